//! File type detection from the first bytes of a file (never from its name). DOCX and
//! PPTX are ZIP archives: the head says ZIP, and [`crate::formats::office::kind`] looks
//! inside.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    Pdf,
    Png,
    Jpeg,
    Tiff,
    Docx,
    Pptx,
}

/// What uploads may be, for error messages.
const ACCEPTED: &str = "PDF, PNG, JPEG, TIFF, DOCX and PPTX";

impl MediaType {
    pub fn mime(self) -> &'static str {
        match self {
            MediaType::Pdf => "application/pdf",
            MediaType::Png => "image/png",
            MediaType::Jpeg => "image/jpeg",
            MediaType::Tiff => "image/tiff",
            MediaType::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            MediaType::Pptx => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        }
    }

    pub fn from_mime(mime: &str) -> Option<Self> {
        [MediaType::Pdf, MediaType::Png, MediaType::Jpeg, MediaType::Tiff, MediaType::Docx, MediaType::Pptx]
            .into_iter()
            .find(|m| m.mime() == mime)
    }

    /// What a user calls a file of this type, for messages ("the PDF has …").
    pub fn noun(self) -> &'static str {
        match self {
            MediaType::Pdf => "PDF",
            MediaType::Png | MediaType::Jpeg | MediaType::Tiff => "image",
            MediaType::Docx => "document",
            MediaType::Pptx => "presentation",
        }
    }

    pub fn is_office(self) -> bool {
        matches!(self, MediaType::Docx | MediaType::Pptx)
    }
}

/// The error for content that is none of the accepted types.
pub fn unsupported(head: &[u8]) -> String {
    format!("unsupported file type: the content looks like {}; Lectern accepts {ACCEPTED}", describe(head))
}

/// A ZIP archive (DOCX, PPTX or anything else zipped).
pub fn is_zip(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04")
}

/// What the bytes look like, for error messages about unsupported files (a ZIP gets here
/// only when it is not DOCX or PPTX).
pub fn describe(head: &[u8]) -> &'static str {
    if head.starts_with(b"PK\x03\x04") {
        "a ZIP archive that is neither DOCX nor PPTX"
    } else if head.starts_with(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1") {
        "an OLE compound file (a legacy .doc/.ppt/.xls, or a password-protected Office document)"
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
        assert_eq!(describe(b"PK\x03\x04rest"), "a ZIP archive that is neither DOCX nor PPTX");
        assert!(is_zip(b"PK\x03\x04rest") && !is_zip(b"%PDF-1.7"));
        assert!(describe(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1..").contains("password-protected Office"));
    }
}
