//! The matrix product every kernel multiplies with: `gemm`'s, on views of slices. Its call is
//! lrlab's one `unsafe` block.

use gemm::Parallelism;

/// A row-major view of a matrix in a slice, possibly transposed.
#[derive(Clone, Copy)]
pub(crate) struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    columns: usize,
    row_stride: usize,
    column_stride: usize,
}

impl<'a> Matrix<'a> {
    /// The `rows × columns` matrix stored row by row at the start of `data`.
    pub(crate) fn new(data: &'a [f32], rows: usize, columns: usize) -> Self {
        assert!(data.len() >= rows * columns, "matrix larger than its slice");
        Matrix {
            data,
            rows,
            columns,
            row_stride: columns,
            column_stride: 1,
        }
    }

    /// The `rows × columns` matrix whose rows start `row_stride` elements apart from the start
    /// of `data` (a head's columns inside a wider matrix).
    pub(crate) fn strided(data: &'a [f32], rows: usize, columns: usize, row_stride: usize) -> Self {
        assert!(
            rows == 0 || data.len() >= (rows - 1) * row_stride + columns,
            "matrix larger than its slice"
        );
        Matrix {
            data,
            rows,
            columns,
            row_stride,
            column_stride: 1,
        }
    }

    /// The transpose, sharing the elements.
    pub(crate) fn t(self) -> Self {
        Matrix {
            rows: self.columns,
            columns: self.rows,
            row_stride: self.column_stride,
            column_stride: self.row_stride,
            ..self
        }
    }
}

/// Where a product is written: `rows × columns` (taken from the product) starting at `data`'s
/// first element, rows `row_stride` elements apart.
pub(crate) struct Destination<'a> {
    data: &'a mut [f32],
    row_stride: usize,
}

impl<'a> Destination<'a> {
    /// A row-major matrix filling `data` from its start, rows `columns` apart.
    pub(crate) fn dense(data: &'a mut [f32], columns: usize) -> Self {
        Destination {
            data,
            row_stride: columns,
        }
    }

    /// A matrix whose rows start `row_stride` elements apart (a head's columns inside a wider
    /// matrix).
    pub(crate) fn strided(data: &'a mut [f32], row_stride: usize) -> Self {
        Destination { data, row_stride }
    }
}

/// `dst (m, n) = a (m, k) · b (k, n)` for a row-major `dst`, or `dst += a · b` when
/// `accumulate`.
pub(crate) fn matmul(
    dst: &mut [f32],
    a: Matrix,
    b: Matrix,
    accumulate: bool,
    parallelism: Parallelism,
) {
    let columns = b.columns;
    matmul_into(
        Destination::dense(dst, columns),
        a,
        b,
        accumulate,
        parallelism,
    );
}

/// [`matmul`] into any [`Destination`].
#[allow(unsafe_code)] // gemm's entry point takes pointers and strides.
pub(crate) fn matmul_into(
    dst: Destination,
    a: Matrix,
    b: Matrix,
    accumulate: bool,
    parallelism: Parallelism,
) {
    let (m, k, n) = (a.rows, a.columns, b.columns);
    assert!(
        b.rows == k
            && dst.row_stride >= n
            && (m == 0 || dst.data.len() >= (m - 1) * dst.row_stride + n),
        "matmul: shapes do not match"
    );
    // SAFETY: the views and `dst` hold every element the strides reach (checked by
    // `Matrix::new`, `Matrix::strided` and above; a transpose reaches the same elements), and
    // `dst` is exclusive.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            1,
            dst.row_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.column_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.column_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}
