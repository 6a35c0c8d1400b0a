//! glibc's allocator, tuned for training: keep freed memory for the next step instead of handing
//! it back to the kernel.
//!
//! A training step allocates and frees the same large tensors (activations, gradients, the
//! columns of a convolution) every step. glibc serves blocks above its mmap threshold with fresh
//! mappings and trims its heap whenever the free top exceeds the trim threshold; both thresholds
//! move with the history of frees, so whether a step's tensors come back as reused memory or as
//! fresh pages that the kernel faults in and zeroes one 4 KiB page at a time depended on which
//! sizes happened to be freed before (BERT-base: 1.4 million page faults a step, a third of its
//! time, after an unrelated change stopped freeing 30 MB blocks). Fixed thresholds remove that.

/// Blocks up to 32 MiB (glibc's largest mmap threshold) come from the heap.
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Up to 512 MiB of free heap is kept for the next step.
const TRIM_THRESHOLD: i32 = 512 << 20;
/// The heap grows 64 MiB beyond a request at a time.
const TOP_PAD: i32 = 64 << 20;

/// Sets the thresholds; call before the work starts. Elsewhere than glibc, nothing.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (parameter, value) in [
        (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (libc::M_TOP_PAD, TOP_PAD),
    ] {
        // SAFETY: `mallopt` only sets allocator parameters; glibc serialises it with the
        // allocator's own locks, and these values are in its documented ranges.
        #[allow(unsafe_code)]
        let accepted = unsafe { libc::mallopt(parameter, value) };
        debug_assert_eq!(accepted, 1, "mallopt({parameter}, {value})");
    }
}
