// Recycled storage for large tensors.
import Synchronization

/// Blocks of freed tensor storage (256 KiB and more) kept for the next tensor of about the
/// same size.
///
/// Why: a network's forward pass allocates a new output for every layer, and large blocks
/// come from `mmap`, so every layer's output was fresh memory: a page fault per 4 KiB on
/// first touch (zeroed by the kernel), and an `munmap` with TLB shootdowns when it was
/// freed. Measured on the 2-core KVM machine: EfficientNet-Lite0's and the compact network's
/// RGB stems took 1.15-1.4 ms inside the network against 0.84 ms when the same call was
/// repeated (its freed output reused). The next forward pass asks for the same sizes, so a
/// small cache of freed blocks serves almost every request without touching the system.
///
/// Bounded: at most ``budgetBytes`` in at most ``maximumBlocks`` blocks, the oldest dropped
/// first; a block serves requests of 80-100 % of its size, so little is wasted.
/// ``Tensor/releaseCachedStorage()`` hands everything back to the system.
@_spi(Testing) public final class StorageCache: Sendable {
    struct Block: @unchecked Sendable {  // owned by the cache or by one TensorStorage
        let base: UnsafeMutablePointer<Float>
        let capacity: Int
    }

    /// The cache behind every tensor.
    static let shared = StorageCache()

    /// Smaller blocks come from malloc's own free lists; caching them gains nothing.
    static let minimumFloats = (256 << 10) / 4
    let budgetBytes: Int
    let maximumBlocks: Int

    private let blocks = Mutex<[Block]>([])

    /// A cache of at most `budgetBytes` in at most `maximumBlocks` blocks.
    @_spi(Testing) public init(budgetBytes: Int = 128 << 20, maximumBlocks: Int = 32) {
        self.budgetBytes = budgetBytes
        self.maximumBlocks = maximumBlocks
    }

    deinit { releaseAll() }

    /// A block for at least `count` floats, 64-byte aligned (one zmm vector / one cache line,
    /// so SIMD loads never straddle): a cached one of a suitable size, or a new one.
    @_spi(Testing) public func allocate(count: Int) -> (UnsafeMutablePointer<Float>, capacity: Int) {
        if let block = take(count: count) { return (block.base, block.capacity) }
        let base = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
            .bindMemory(to: Float.self, capacity: max(count, 1))
        return (base, max(count, 1))
    }

    /// Gives back a block from ``allocate(count:)``: kept, or freed (with any blocks pushed
    /// out of the budget).
    @_spi(Testing) public func free(_ base: UnsafeMutablePointer<Float>, capacity: Int) {
        guard capacity >= StorageCache.minimumFloats, capacity * 4 <= budgetBytes / 4 else {
            base.deallocate()
            return
        }
        let dropped = blocks.withLock { blocks -> [Block] in
            blocks.append(Block(base: base, capacity: capacity))
            var bytes = blocks.reduce(0) { $0 + $1.capacity * 4 }
            var dropped: [Block] = []
            while bytes > budgetBytes || blocks.count > maximumBlocks {
                let oldest = blocks.removeFirst()
                bytes -= oldest.capacity * 4
                dropped.append(oldest)
            }
            return dropped
        }
        for block in dropped { block.base.deallocate() }
    }

    /// A cached block for `count` floats, if one of a suitable size is free.
    private func take(count: Int) -> Block? {
        guard count >= StorageCache.minimumFloats else { return nil }
        return blocks.withLock { blocks in
            // The smallest block that fits, if it is not much larger than asked for.
            var best: Int?
            for index in blocks.indices where blocks[index].capacity >= count && blocks[index].capacity / 5 * 4 <= count {
                if best == nil || blocks[index].capacity < blocks[best!].capacity { best = index }
            }
            return best.map { blocks.remove(at: $0) }
        }
    }

    /// Frees every cached block.
    @_spi(Testing) public func releaseAll() {
        let all = blocks.withLock { blocks -> [Block] in
            defer { blocks.removeAll() }
            return blocks
        }
        for block in all { block.base.deallocate() }
    }

    /// Bytes held now.
    @_spi(Testing) public var cachedBytes: Int { blocks.withLock { $0.reduce(0) { $0 + $1.capacity * 4 } } }
}

extension Tensor {
    /// Returns the storage kept from freed large tensors to the system.
    ///
    /// Tensors of 256 KiB and more recycle their storage through a small cache (at most
    /// 128 MiB) so that repeated forward passes do not page-fault on fresh memory; call this
    /// when the process will not run a network for a while and wants the memory back.
    public static func releaseCachedStorage() { StorageCache.shared.releaseAll() }

    /// Bytes of freed tensor storage currently kept for reuse.
    public static var cachedStorageBytes: Int { StorageCache.shared.cachedBytes }
}
