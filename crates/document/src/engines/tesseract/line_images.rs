//! Tesseract 5.3 (the apt build) hands every text line to its LSTM as a PNG file in memory:
//! `ImageData::SetPix` encodes the line image with leptonica's `pixWriteMem(.., IFF_PNG)` and
//! `ImageData::GetPix` decodes it again with `pixReadMem`. That costs ~8% of a page's
//! instructions, more on noisy scans (upstream skips it only in builds with
//! `TESSERACT_IMAGEDATA_AS_PIX`).
//!
//! This module defines `pixWriteMem` itself. The executable's definition comes first in the
//! dynamic linker's search order, so tesseract's calls bind to it. A PNG request is written in
//! leptonica's uncompressed `spix` format instead, which `pixReadMem` recognises by its magic
//! and reads back bit for bit; other formats go to leptonica's own function. Lectern never
//! asks leptonica for PNG bytes itself; tesseract does so only for these line images (and
//! for training files and debug images, which Lectern does not write).

use std::ffi::{c_int, c_void};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// leptonica's `IFF_PNG` (imageio.h).
const IFF_PNG: c_int = 3;

type WriteMem = unsafe extern "C" fn(*mut *mut u8, *mut usize, *mut c_void, c_int) -> c_int;

unsafe extern "C" {
    fn pixWriteMemSpix(data: *mut *mut u8, size: *mut usize, pix: *mut c_void) -> c_int;
}

/// Line images written as `spix` instead of PNG since the process started.
static SPIX_WRITES: AtomicUsize = AtomicUsize::new(0);

pub fn spix_writes() -> usize {
    SPIX_WRITES.load(Ordering::Relaxed)
}

/// Same contract as leptonica's `pixWriteMem`: 0 on success, with `*data` allocated by
/// leptonica (the caller frees it with `lept_free`).
///
/// # Safety
/// Called by C code with leptonica's arguments: valid out-pointers and a valid `PIX`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pixWriteMem(data: *mut *mut u8, size: *mut usize, pix: *mut c_void, format: c_int) -> c_int {
    if format == IFF_PNG {
        SPIX_WRITES.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { pixWriteMemSpix(data, size, pix) };
    }
    static LEPTONICA: OnceLock<Option<WriteMem>> = OnceLock::new();
    let leptonica = LEPTONICA.get_or_init(|| {
        // SAFETY: RTLD_NEXT finds the next definition after this one: leptonica's.
        let symbol = unsafe { libc::dlsym(libc::RTLD_NEXT, c"pixWriteMem".as_ptr()) };
        // SAFETY: leptonica's pixWriteMem has exactly this signature.
        (!symbol.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, WriteMem>(symbol) })
    });
    match leptonica {
        // SAFETY: the caller's arguments, passed on unchanged.
        Some(write) => unsafe { write(data, size, pix, format) },
        None => 1,
    }
}
