"""Interactive NiiVue viewer pages (self-contained HTML) for generated, projected, mixed and interpolated volumes."""

from stylegan3d.viewer.page import (
    NIIVUE_VERSION,
    Page,
    Section,
    Volume,
    encode_nifti,
    render_page,
    robust_window,
    write_page,
)

__all__ = ["NIIVUE_VERSION", "Page", "Section", "Volume", "encode_nifti", "render_page", "robust_window", "write_page"]
