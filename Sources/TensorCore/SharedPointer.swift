// Raw pointers handed to ThreadPool workers.

/// A raw pointer that may be captured by the `@Sendable` closures run on ``ThreadPool``.
///
/// Invariant, upheld by every user: while a parallel loop runs, each element behind the
/// pointer is either only read by all participants, or written by exactly one participant
/// and not read by any other (disjoint writes). The loop returns only after every
/// participant has finished, so the memory must stay valid just for the loop's duration.
///
/// ```swift
/// let out = UnsafeSharedPointer(buffer.baseAddress!)
/// pool.parallelRanges(rows) { range in
///     for row in range { out.pointer[row] = ... }   // one writer per row
/// }
/// ```
public struct UnsafeSharedPointer<Pointee>: @unchecked Sendable {
    /// The wrapped pointer.
    public let pointer: UnsafeMutablePointer<Pointee>

    /// Wraps a mutable pointer.
    @inlinable
    public init(_ pointer: UnsafeMutablePointer<Pointee>) { self.pointer = pointer }

    /// Wraps a read-only pointer; by the invariant, participants must only read through it.
    @inlinable
    public init(readOnly pointer: UnsafePointer<Pointee>) {
        self.pointer = UnsafeMutablePointer(mutating: pointer)
    }
}
