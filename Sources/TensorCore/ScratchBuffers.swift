// Scratch memory kept between kernel calls.
import Synchronization

/// Float buffers kept between kernel calls, so that a call neither allocates nor
/// page-faults: a fresh quarter megabyte or more is a fresh `mmap`, page faults on first
/// touch, and in a multi-threaded process every `munmap` also interrupts the other cores
/// to flush their TLBs (GEMM packing and the band-by-band blocks both measured it).
///
/// A caller takes a buffer (allocating one if none is large enough), uses it alone, and
/// gives it back; at most `capacity` buffers are kept. Buffers are 64-byte aligned.
public enum ScratchBuffers {
    private struct Buffer: @unchecked Sendable {  // owned by exactly one user between take and give
        let base: UnsafeMutablePointer<Float>
        let floats: Int
    }
    private static let capacity = 8
    private static let free = Mutex<[Buffer]>([])

    /// Runs `body` with a buffer of at least `floats` floats (uninitialised) that no other
    /// caller uses meanwhile; the buffer must not be used after `body` returns.
    public static func with<R>(floats: Int, _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
        let floats = max(floats, 1)
        let taken = free.withLock { buffers -> Buffer? in
            guard let index = buffers.firstIndex(where: { $0.floats >= floats }) else { return nil }
            return buffers.remove(at: index)
        }
        let buffer = taken ?? Buffer(
            base: UnsafeMutableRawPointer.allocate(byteCount: floats * 4, alignment: 64)
                .bindMemory(to: Float.self, capacity: floats),
            floats: floats)
        defer {
            let dropped = free.withLock { buffers -> Buffer? in
                buffers.append(buffer)
                guard buffers.count > capacity else { return nil }
                // Drop the smallest: the large ones serve every size.
                let smallest = buffers.indices.min { buffers[$0].floats < buffers[$1].floats }!
                return buffers.remove(at: smallest)
            }
            dropped?.base.deallocate()
        }
        return body(buffer.base)
    }
}
