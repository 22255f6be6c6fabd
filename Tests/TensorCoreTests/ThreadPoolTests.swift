import Foundation
import Synchronization
import Testing
import TensorCore

/// Counts visits per index under a lock, so concurrent participants can record safely.
final class VisitCounter: Sendable {
    let counts: Mutex<[Int]>
    init(_ count: Int) { counts = Mutex([Int](repeating: 0, count: count)) }
    func visit(_ index: Int) { counts.withLock { $0[index] += 1 } }
    var all: [Int] { counts.withLock { $0 } }
}

@Test("every index is visited exactly once", arguments: [1, 2, 3, 5], [0, 1, 2, 7, 1000])
func everyIndexOnce(threads: Int, count: Int) {
    let pool = ThreadPool(threadCount: threads)
    let counter = VisitCounter(count)
    for _ in 0..<20 {
        pool.parallelFor(count) { counter.visit($0) }
    }
    #expect(counter.all == [Int](repeating: 20, count: count))
}

@Test("parallelChunks runs every chunk once, aligned to the chunk size", arguments: [1, 2, 3, 5])
func chunksOnce(threads: Int) {
    let pool = ThreadPool(threadCount: threads)
    for (count, chunk) in [(0, 4), (1, 4), (7, 1), (100, 3), (1000, 16), (1000, 2000), (33, 0)] {
        let counter = VisitCounter(count)
        let misaligned = Mutex(0)
        for _ in 0..<10 {
            pool.parallelChunks(count, chunk: chunk) { range in
                let size = max(1, chunk)
                if range.lowerBound % size != 0 || (range.count != size && range.upperBound != count) {
                    misaligned.withLock { $0 += 1 }
                }
                for index in range { counter.visit(index) }
            }
        }
        #expect(counter.all == [Int](repeating: 10, count: count), "count \(count) chunk \(chunk)")
        #expect(misaligned.withLock { $0 } == 0, "count \(count) chunk \(chunk)")
    }
}

/// Chunk 0 (the caller's first) waits until every other chunk has run: that ends only if the
/// worker, after its own share, takes the rest of the caller's share.
@Test("an idle participant takes chunks from the end of a busy one's share")
func chunksAreTakenOver() {
    let pool = ThreadPool(threadCount: 2)
    let chunks = 40
    let done = Atomic<Int>(0)
    let timedOut = Atomic<Bool>(false)
    pool.parallelChunks(chunks, chunk: 1) { range in
        if range.lowerBound == 0 {
            let deadline = Date().addingTimeInterval(20)
            while done.load(ordering: .acquiring) < chunks - 1 {
                if Date() > deadline { timedOut.store(true, ordering: .relaxed); break }
                usleep(100)
            }
        }
        done.add(1, ordering: .releasing)
    }
    let waitedInVain = timedOut.load(ordering: .relaxed), ran = done.load(ordering: .relaxed)
    #expect(!waitedInVain)
    #expect(ran == chunks)
}

@Test("parallelChunks inside a loop body runs inline and visits everything")
func nestedChunks() {
    let pool = ThreadPool(threadCount: 2)
    let counter = VisitCounter(20 * 50)
    pool.parallelFor(20) { outer in
        pool.parallelChunks(50, chunk: 8) { range in
            for inner in range { counter.visit(outer * 50 + inner) }
        }
    }
    #expect(counter.all == [Int](repeating: 1, count: 1000))
}

@Test("static ranges are contiguous, disjoint and cover the count")
func staticRanges() {
    for participants in 1...5 {
        for count in [0, 1, 4, 9, 100] {
            let ranges = (0..<participants).map {
                ThreadPool.range(of: $0, participants: participants, count: count)
            }
            #expect(ranges.first?.lowerBound == 0)
            #expect(ranges.last?.upperBound == count)
            for (left, right) in zip(ranges, ranges.dropFirst()) { #expect(left.upperBound == right.lowerBound) }
            #expect(ranges.map(\.count).max()! - ranges.map(\.count).min()! <= 1)
        }
    }
}

@Test("nested parallelFor runs inline and visits everything")
func nestedUse() {
    let pool = ThreadPool(threadCount: 2)
    let counter = VisitCounter(30 * 40)
    pool.parallelFor(30) { outer in
        pool.parallelFor(40) { inner in counter.visit(outer * 40 + inner) }
    }
    #expect(counter.all == [Int](repeating: 1, count: 1200))
}

@Test("concurrent submitters from several threads neither deadlock nor lose indices")
func concurrentSubmitters() async {
    let pool = ThreadPool(threadCount: 2)
    let counter = VisitCounter(4 * 500)
    await withTaskGroup(of: Void.self) { group in
        for submitter in 0..<4 {
            group.addTask {
                for _ in 0..<50 {
                    pool.parallelFor(500) { counter.visit(submitter * 500 + $0) }
                }
            }
        }
    }
    #expect(counter.all == [Int](repeating: 50, count: 2000))
}

@Test("pools can be created and released repeatedly")
func createAndRelease() {
    let counter = VisitCounter(64)
    for _ in 0..<50 {
        let pool = ThreadPool(threadCount: 3)
        pool.parallelFor(64) { counter.visit($0) }
    }
    #expect(counter.all == [Int](repeating: 50, count: 64))
    #expect(ThreadPool.shared.threadCount >= 1)
}

@Test("VINSPECT_THREADS sets the default size; nonsense falls back to the core count")
func defaultThreadCountFromEnvironment() {
    let saved = ProcessInfo.processInfo.environment["VINSPECT_THREADS"]
    defer {
        if let saved { setenv("VINSPECT_THREADS", saved, 1) } else { unsetenv("VINSPECT_THREADS") }
    }
    setenv("VINSPECT_THREADS", "3", 1)
    #expect(ThreadPool.defaultThreadCount == 3)
    for nonsense in ["0", "-2", "many", ""] {
        setenv("VINSPECT_THREADS", nonsense, 1)
        #expect(ThreadPool.defaultThreadCount == ProcessInfo.processInfo.activeProcessorCount)
    }
    #expect(ThreadPool(threadCount: 0).threadCount == 1)
}

@Test("recordingCalls times every call run on several threads, in order, and only while it runs")
func recordedCallTimings() {
    let pool = ThreadPool(threadCount: 2)
    pool.parallelRanges(8) { _ in }   // before: not recorded
    let (value, timings) = pool.recordingCalls { () -> Int in
        pool.parallelRanges(8) { _ in usleep(2000) }      // both threads busy about 2 ms
        pool.parallelRanges(1) { _ in }                   // one participant: runs inline, not recorded
        pool.parallelChunks(64, chunk: 4) { _ in }
        return 7
    }
    pool.parallelRanges(8) { _ in }   // after: not recorded
    #expect(value == 7)
    #expect(timings.count == 2)
    for t in timings {
        #expect(t.start <= t.callerEnd && t.callerEnd <= t.end)
        #expect(t.start <= t.workerStart && t.workerStart <= t.workerEnd && t.workerEnd <= t.end)
    }
    if let first = timings.first, let second = timings.last {
        #expect(first.callerEnd - first.start >= 1_500_000 && first.workerEnd - first.workerStart >= 1_500_000)
        #expect(first.end <= second.start)
    }
    // The next recording starts empty.
    let (_, again) = pool.recordingCalls { pool.parallelRanges(8) { _ in } }
    #expect(again.count == 1)
}
