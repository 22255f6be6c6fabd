// A small persistent worker pool for data-parallel kernels.
//
// Why not DispatchQueue.concurrentPerform: on this project's 1-2 ms kernel calls it scaled
// only 1.2-1.5x on 2 cores, while a pool whose threads spin briefly before sleeping reached
// ~2x (see FACTS.md). Work is split statically and deterministically: participant p of T
// always gets the same contiguous index range, so a kernel that gives every output element
// one writer produces the same bits whatever the thread count. `parallelChunks` adds help
// between participants, for kernels whose results do not depend on the split at all.
import Foundation
import Synchronization

/// A fixed set of worker threads that run `parallelFor` loops together with the caller.
///
/// The threads are created once. Between jobs they spin for a short while (so that the
/// back-to-back kernels of a network forward pass start without a wake-up latency), then
/// sleep on a condition variable and cost nothing.
///
/// Partitioning is static: with `T` threads, indices `0..<count` are cut into `T`
/// contiguous ranges of (almost) equal size; the caller runs range 0 and worker `p` runs
/// range `p`. Kernels that give each output element exactly one writer are therefore
/// deterministic and independent of the thread count.
///
/// Thread safety: one submission runs at a time. A call made while the pool is busy --
/// from another thread, or re-entrantly from inside a loop body -- does not wait: it runs
/// its loop inline on the calling thread (same results, no deadlock).
///
/// ```swift
/// let pool = ThreadPool(threadCount: 2)
/// pool.parallelFor(rows) { row in ... }        // one call per index
/// pool.parallelRanges(rows) { range in ... }   // one call per participant
/// ```
public final class ThreadPool: @unchecked Sendable {
    /// The number of threads that share a loop, the caller included (at least 1).
    public let threadCount: Int

    private let state: PoolState
    /// Held for the duration of a submission; `withLockIfAvailable` failing means "busy".
    private let submission = Mutex<Void>(())
    /// Per-participant chunk shares of ``parallelChunks(_:chunk:_:)``, used under `submission`.
    private let shares: [ChunkShare]

    /// The pool used by the library's kernels when no pool is passed explicitly.
    ///
    /// Sized by the environment variable `VINSPECT_THREADS` when it holds a positive
    /// integer, otherwise by the number of active processor cores.
    public static let shared = ThreadPool(threadCount: defaultThreadCount)

    /// `VINSPECT_THREADS` if set to a positive integer, else the active processor count.
    public static var defaultThreadCount: Int {
        if let text = ProcessInfo.processInfo.environment["VINSPECT_THREADS"],
            let value = Int(text.trimmingCharacters(in: .whitespaces)), value > 0
        {
            return value
        }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }

    /// Creates a pool; `threadCount - 1` worker threads are started (the caller is the other).
    ///
    /// - Parameter threadCount: the number of participants per loop; values below 1 mean 1.
    public init(threadCount: Int) {
        self.threadCount = max(1, threadCount)
        state = PoolState(workerCount: self.threadCount - 1)
        shares = (0..<self.threadCount).map { _ in ChunkShare() }
        for worker in 0..<(self.threadCount - 1) {
            let state = self.state
            let thread = Thread { state.workerLoop(participant: worker + 1) }
            thread.name = "vinspect-pool-\(worker + 1)"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    deinit {
        // Workers hold only `state`, not the pool, so this runs; they see the flag and exit.
        state.shutDown()
    }

    /// The contiguous index range of participant `participant` out of `participants` when
    /// `count` indices are split statically (the first `count % participants` ranges get
    /// one extra index).
    public static func range(of participant: Int, participants: Int, count: Int) -> Range<Int> {
        let base = count / participants, extra = count % participants
        let start = participant * base + min(participant, extra)
        return start..<(start + base + (participant < extra ? 1 : 0))
    }

    /// Runs `body(range)` once per participant over a static split of `0..<count`.
    ///
    /// Use this form in kernels: each participant binds its buffers once and loops over its
    /// own range. Participants with an empty range are not called.
    ///
    /// - Parameters:
    ///   - count: the number of indices to split.
    ///   - body: called with disjoint ranges whose union is `0..<count`, possibly
    ///     concurrently from different threads. Raw pointers it writes through are
    ///     captured in an ``UnsafeSharedPointer``.
    public func parallelRanges(_ count: Int, _ body: @Sendable (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let participants = min(threadCount, count)
        if participants == 1 {
            body(0..<count)
            return
        }
        let ranRemotely: Bool = withoutActuallyEscaping(body) { escapable in
            submission.withLockIfAvailable { _ in
                state.run(participants: participants) { participant in
                    escapable(ThreadPool.range(of: participant, participants: participants, count: count))
                }
            } != nil
        }
        if !ranRemotely {
            // Busy (another submitter, or called from inside a loop body): run inline with
            // the same static split, so the results are the same as in parallel.
            for participant in 0..<participants {
                body(ThreadPool.range(of: participant, participants: participants, count: count))
            }
        }
    }

    /// Runs `body` on chunks of `chunk` consecutive indices of `0..<count`. Each participant
    /// starts with the chunks of its own static share, in order, and one that runs out takes
    /// chunks from the far end of another's share. Each chunk is one call of `body`; use it
    /// for kernels whose results do not depend on which participant computes which chunk.
    ///
    /// Why: on a shared virtual machine one core can run 20-40 % slower than the other for
    /// minutes (the same single-threaded loop took 0.84 s on one and 1.18 s on the other),
    /// and a static split then waits for the slower one at the end of every layer. Handing
    /// out every chunk from one counter balances that, but cost 1-5 % when the cores were
    /// even (Lite0 and compact at 2 threads): a layer's input then sits in the other core's
    /// L2 more often, and the counter's cache line moves between cores on every chunk. With
    /// own shares first, a balanced run touches the same data as the static split.
    ///
    /// When the pool is busy (another submitter, or a call from inside a loop body) the
    /// chunks run in order on the calling thread.
    public func parallelChunks(_ count: Int, chunk: Int, _ body: @Sendable (Range<Int>) -> Void) {
        parallelShares(count, chunk: chunk) { next in
            while let range = next() { body(range) }
        }
    }

    /// The loop behind ``parallelChunks(_:chunk:_:)``, for kernels that carry state from one
    /// chunk to the next (a participant's scratch buffers, or work a following chunk can
    /// reuse): `body` is called once per participant with `next`, which returns the
    /// participant's next chunk (its own share in order, then chunks from the end of the
    /// others'), or nil when none is left. Busy pool: one call on the calling thread, whose
    /// `next` returns all the chunks in order.
    public func parallelShares(_ count: Int, chunk: Int, _ body: @Sendable (_ next: () -> Range<Int>?) -> Void) {
        guard count > 0 else { return }
        // (At least count / 2^31 indices a chunk: the shares count chunks in 32 bits.)
        let chunk = max(1, chunk, (count >> 31) + 1)
        let chunks = (count + chunk - 1) / chunk
        let participants = min(threadCount, chunks)
        func inline() {
            var index = 0
            body {
                defer { index += 1 }
                return index < chunks ? (index * chunk)..<min(count, (index + 1) * chunk) : nil
            }
        }
        if participants == 1 {
            inline()
            return
        }
        let ranRemotely: Bool = withoutActuallyEscaping(body) { body in
            submission.withLockIfAvailable { _ -> Void in
                // The shares are the pool's, reused by every call: only the lock holder uses them.
                let shares = self.shares
                for p in 0..<participants {
                    shares[p].set(ThreadPool.range(of: p, participants: participants, count: chunks))
                }
                state.run(participants: participants) { p in
                    var offset = 0
                    body {
                        while offset < participants {
                            if let index = shares[(p + offset) % participants].take(last: offset > 0) {
                                return (index * chunk)..<min(count, (index + 1) * chunk)
                            }
                            offset += 1
                        }
                        return nil
                    }
                }
            } != nil
        }
        if !ranRemotely { inline() }
    }

    /// Runs `body` and returns, with its result, the timing of every call that this pool ran
    /// on several threads meanwhile (a profiling aid: where a forward pass's threads wait).
    /// Calls run inline (busy pool, one participant) are not recorded. Off outside this call,
    /// where it costs one relaxed atomic load per call and per worker.
    public func recordingCalls<R>(_ body: () throws -> R) rethrows -> (R, [ParallelCallTiming]) {
        state.timings.withLock { $0.removeAll() }
        state.recording.store(true, ordering: .sequentiallyConsistent)
        defer { state.recording.store(false, ordering: .sequentiallyConsistent) }
        let result = try body()
        return (result, state.timings.withLock { $0 })
    }

    /// Runs `body(index)` for every index in `0..<count`, spread over the pool's threads.
    ///
    /// - Parameters:
    ///   - count: the number of indices.
    ///   - body: called exactly once per index, possibly concurrently from several
    ///     threads; it must not write memory that another index writes.
    public func parallelFor(_ count: Int, _ body: @Sendable (Int) -> Void) {
        parallelRanges(count) { range in
            for index in range { body(index) }
        }
    }
}

/// One parallel call's timeline, from ``ThreadPool/recordingCalls(_:)``: monotonic
/// nanoseconds (`DispatchTime` uptime).
public struct ParallelCallTiming: Sendable {
    /// When the call was handed to the workers (the caller then runs its own part), and
    /// when the caller finished its part.
    public var start: UInt64, callerEnd: UInt64
    /// When the call returned (every worker done).
    public var end: UInt64
    /// The workers' earliest start and latest end of their parts.
    public var workerStart: UInt64, workerEnd: UInt64
}

/// One participant's remaining chunks in a ``ThreadPool/parallelChunks(_:chunk:_:)`` call:
/// `first..<end`, packed in one word (first in the low 32 bits) so that the owner taking
/// from the front and another participant taking from the back never hand out the same
/// chunk. Padded to its own cache line: the owner updates it once per chunk.
private final class ChunkShare: Sendable {
    private let word = Atomic<UInt64>(0)
    private let padding: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0)

    func set(_ range: Range<Int>) {
        word.store(UInt64(range.upperBound) << 32 | UInt64(range.lowerBound), ordering: .relaxed)
    }

    /// The share's first chunk (its owner) or last chunk (a helper), removed; nil when empty.
    func take(last: Bool) -> Int? {
        var current = word.load(ordering: .relaxed)
        while true {
            let first = current & 0xffff_ffff, end = current >> 32
            if first >= end { return nil }
            let desired = last ? (end - 1) << 32 | first : end << 32 | (first + 1)
            let (exchanged, original) = word.compareExchange(expected: current, desired: desired, ordering: .relaxed)
            if exchanged { return Int(last ? end - 1 : first) }
            current = original
        }
    }
}

/// The state shared by the submitting thread and the workers.
///
/// Protocol: the submitter stores the job, then increments `generation` (release);
/// every worker that observes a new generation (acquire) runs its participant index if it
/// takes part, then decrements `pending` (release); the submitter waits for `pending == 0`
/// (acquire) before returning, so the job closure never outlives the call and no worker
/// still reads one job's fields when the next is stored.
private final class PoolState: @unchecked Sendable {
    let workerCount: Int
    let generation = Atomic<Int>(0)
    let pending = Atomic<Int>(0)
    let sleepers = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
    let condition = NSCondition()
    /// ``ThreadPool/recordingCalls(_:)``: on while it runs; the workers' part of the timeline.
    let recording = Atomic<Bool>(false)
    let workerStart = Atomic<Int>(.max), workerEnd = Atomic<Int>(0)   // nanoseconds
    let timings = Mutex<[ParallelCallTiming]>([])

    // Written only by the submitter before `generation` is published; read by workers after.
    var job: (@Sendable (Int) -> Void)? = nil
    var participants = 0

    /// How long an idle worker spins before sleeping. Long enough to bridge the gap
    /// between consecutive kernels, short enough not to burn a core when idle.
    static let spinDuration: Duration = .microseconds(200)

    init(workerCount: Int) { self.workerCount = workerCount }

    /// Runs `job(p)` for `p` in `0..<participants`: `0` on the calling thread, the rest on
    /// workers `1..<participants`. Returns when all have finished.
    func run(participants: Int, _ job: @escaping @Sendable (Int) -> Void) {
        // Recording (``ThreadPool/recordingCalls(_:)``): the call starts before the workers see it.
        let recorded = recording.load(ordering: .relaxed)
        let start = recorded ? DispatchTime.now().uptimeNanoseconds : 0
        self.job = job
        self.participants = participants
        // Every worker acknowledges every job, even when it has no range, so that no worker
        // can still be reading this job's fields when the next submission overwrites them.
        pending.store(workerCount, ordering: .sequentiallyConsistent)
        generation.add(1, ordering: .sequentiallyConsistent)
        // A worker announces itself in `sleepers` before checking `generation` under the
        // lock, so either it sees the new generation or we see it and wake it.
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            condition.lock()
            condition.broadcast()
            condition.unlock()
        }
        job(0)
        let callerEnd = recorded ? DispatchTime.now().uptimeNanoseconds : 0
        var spins = 0
        while pending.load(ordering: .acquiring) > 0 {
            spins += 1
            // A worker may have been descheduled (other processes share the cores): stop
            // hogging the CPU it needs.
            if spins > 4096 { sched_yield() }
        }
        if recorded {
            let timing = ParallelCallTiming(start: start, callerEnd: callerEnd, end: DispatchTime.now().uptimeNanoseconds,
                                            workerStart: UInt64(workerStart.exchange(.max, ordering: .relaxed)),
                                            workerEnd: UInt64(workerEnd.exchange(0, ordering: .relaxed)))
            timings.withLock { $0.append(timing) }
        }
        self.job = nil
    }

    func workerLoop(participant: Int) {
        var seen = 0
        while true {
            var current = generation.load(ordering: .acquiring)
            if current == seen {
                let clock = ContinuousClock()
                let deadline = clock.now.advanced(by: PoolState.spinDuration)
                var spins = 0
                while current == seen {
                    spins += 1
                    if spins & 255 == 0 && clock.now >= deadline {
                        sleep(seen: seen)
                    }
                    current = generation.load(ordering: .acquiring)
                }
            }
            seen = current
            if stopping.load(ordering: .acquiring) { return }
            if participant < participants, let job {
                if recording.load(ordering: .relaxed) {
                    workerStart.min(Int(DispatchTime.now().uptimeNanoseconds), ordering: .relaxed)
                    job(participant)
                    workerEnd.max(Int(DispatchTime.now().uptimeNanoseconds), ordering: .relaxed)
                } else {
                    job(participant)
                }
            }
            pending.subtract(1, ordering: .releasing)
        }
    }

    private func sleep(seen: Int) {
        sleepers.add(1, ordering: .sequentiallyConsistent)
        condition.lock()
        while generation.load(ordering: .sequentiallyConsistent) == seen {
            condition.wait()
        }
        condition.unlock()
        sleepers.subtract(1, ordering: .sequentiallyConsistent)
    }

    func shutDown() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        generation.add(1, ordering: .sequentiallyConsistent)
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }
}
