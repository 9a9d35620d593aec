//! File type detection from the first bytes of a file (never from its name).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    Pdf,
    Png,
    Jpeg,
    Tiff,
}

impl MediaType {
    pub fn mime(self) -> &'static str {
        match self {
            MediaType::Pdf => "application/pdf",
            MediaType::Png => "image/png",
            MediaType::Jpeg => "image/jpeg",
            MediaType::Tiff => "image/tiff",
        }
    }

    pub fn from_mime(mime: &str) -> Option<Self> {
        [MediaType::Pdf, MediaType::Png, MediaType::Jpeg, MediaType::Tiff].into_iter().find(|m| m.mime() == mime)
    }

    pub fn is_image(self) -> bool {
        self != MediaType::Pdf
    }
}

/// What the bytes look like, for error messages about unsupported files.
pub fn describe(head: &[u8]) -> &'static str {
    if head.starts_with(b"PK\x03\x04") {
        "a ZIP container (DOCX/PPTX/ZIP)"
    } else if head.starts_with(b"GIF8") {
        "a GIF image"
    } else if head.iter().take(512).all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace()) {
        "plain text"
    } else {
        "an unrecognised binary format"
    }
}

/// Sniffs the type from the leading bytes. PDFs may have up to 1 KiB of junk before
/// `%PDF-`, as readers accept.
pub fn sniff(head: &[u8]) -> Option<MediaType> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(MediaType::Png)
    } else if head.starts_with(b"\xff\xd8\xff") {
        Some(MediaType::Jpeg)
    } else if head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") {
        Some(MediaType::Tiff)
    } else if head.windows(5).take(1024).any(|w| w == b"%PDF-") {
        Some(MediaType::Pdf)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content_not_name() {
        assert_eq!(sniff(b"%PDF-1.7\n..."), Some(MediaType::Pdf));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some(MediaType::Png));
        assert_eq!(sniff(b"\xff\xd8\xff\xe0"), Some(MediaType::Jpeg));
        assert_eq!(sniff(b"II*\0\x08"), Some(MediaType::Tiff));
        assert_eq!(sniff(b"hello, this is text"), None);
        assert_eq!(sniff(b""), None);
        assert_eq!(describe(b"PK\x03\x04rest"), "a ZIP container (DOCX/PPTX/ZIP)");
    }
}
