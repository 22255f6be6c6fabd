// A small persistent worker pool for data-parallel kernels.
//
// Why not DispatchQueue.concurrentPerform: on this project's 1-2 ms kernel calls it scaled
// only 1.2-1.5x on 2 cores, while a pool whose threads spin briefly before sleeping reached
// ~2x (see FACTS.md). Work is split statically and deterministically: participant p of T
// always gets the same contiguous index range, so a kernel that gives every output element
// one writer produces the same bits whatever the thread count.
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
        var spins = 0
        while pending.load(ordering: .acquiring) > 0 {
            spins += 1
            // A worker may have been descheduled (other processes share the cores): stop
            // hogging the CPU it needs.
            if spins > 4096 { sched_yield() }
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
            if participant < participants, let job { job(participant) }
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
