from stylegan3d.cli.main import main

main()
