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
