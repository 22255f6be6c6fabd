// anomaly-bench: the Anomaly target's shared components, each next to a peer measured in
// the same run.
//
//   1. MemoryBank.nearest (k = 1) for Q queries against a [B, D] bank, on 1 and 2 threads,
//      in ms and GFLOP/s (2 Q B D flops), next to a bare sgemm of the same [Q, D] x [D, B]
//      shape (the distance search cannot beat it; the ratio is the top-k overhead).
//   2. --sweep: the same search for a grid of MemoryBank.Blocking sizes (1 thread).
//   3. Coreset.greedyKCenter for N x D -> count (projection 128), 1 and 2 threads, next to
//      the time to stream the projected points once per step from memory.
//   4. PositionGaussian fit and scoring for P positions x D dims from N images.
//
// Options: --queries Q --bank B --dimension D (defaults 784, 16384, 384), --sweep,
//          --coreset N,count (default 50000,5000; 0 skips), --no-gaussian.
import Anomaly
import Foundation
import TensorCore

var queryCount = 784, bankCount = 16384, dimension = 384
var sweep = false, coresetN = 50_000, coresetCount = 5_000, runGaussian = true
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--queries": queryCount = arguments.next().flatMap { Int($0) } ?? queryCount
    case "--bank": bankCount = arguments.next().flatMap { Int($0) } ?? bankCount
    case "--dimension": dimension = arguments.next().flatMap { Int($0) } ?? dimension
    case "--sweep": sweep = true
    case "--coreset":
        let parts = (arguments.next() ?? "").split(separator: ",").compactMap { Int($0) }
        if parts.count == 2 { (coresetN, coresetCount) = (parts[0], parts[1]) } else { coresetN = 0 }
    case "--no-gaussian": runGaussian = false
    default:
        print("usage: anomaly-bench [--queries Q] [--bank B] [--dimension D] [--sweep] [--coreset N,count] [--no-gaussian]")
        exit(2)
    }
}

do {
    try CPUFeatures.check()
} catch {
    print("anomaly-bench: \(error)")
    exit(1)
}

/// The best of `repeats` runs of `body`, in seconds (after one warm-up run).
func best(_ repeats: Int, _ body: () -> Void) -> Double {
    body()
    var bestTime = Double.infinity
    let clock = ContinuousClock()
    for _ in 0..<repeats {
        let elapsed = clock.measure(body)
        bestTime = min(bestTime, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
    }
    return bestTime
}

func format(_ value: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", value) }

var rng = Xoshiro256(seed: 1)
let pools: [(String, ThreadPool?)] = [("1 thread", nil), ("2 threads", ThreadPool(threadCount: 2))]

// MARK: - k-NN

let bankFeatures = Tensor(randomNormal: [bankCount, dimension], using: &rng)
let queries = Tensor(randomNormal: [queryCount, dimension], using: &rng)
let bank = MemoryBank(bankFeatures)
let flops = 2.0 * Double(queryCount) * Double(bankCount) * Double(dimension)
print("k-NN: \(queryCount) queries x [\(bankCount), \(dimension)] bank, k = 1 (\(format(flops / 1e9, 2)) GFLOP)")
for (name, pool) in pools {
    let search = best(5) { _ = bank.nearest(queries, pool: pool) }
    var c = [Float](repeating: 0, count: queryCount * bankCount)
    let gemm = best(5) {
        queries.withUnsafeBufferPointer { q in
            bankFeatures.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer { c in
                    sgemm(
                        transposeA: false, transposeB: true, m: queryCount, n: bankCount, k: dimension, alpha: 1,
                        a: q.baseAddress, lda: dimension, b: b.baseAddress, ldb: dimension, beta: 0,
                        c: c.baseAddress, ldc: bankCount, pool: pool)
                }
            }
        }
    }
    print(
        "  \(name): nearest \(format(search * 1e3)) ms = \(format(flops / search / 1e9)) GFLOP/s;"
            + " bare sgemm \(format(gemm * 1e3)) ms = \(format(flops / gemm / 1e9)) GFLOP/s; ratio \(format(gemm / search, 2))")
}

if sweep {
    print("blocking sweep (1 thread, ms):")
    for q in [32, 64, 128, 256] {
        var line = "  queries \(q):"
        for b in [256, 512, 1024, 2048] {
            let t = best(3) { _ = bank.nearest(queries, pool: nil, blocking: .init(queries: q, bankRows: b)) }
            line += " \(b): \(format(t * 1e3))"
        }
        print(line)
    }
}

// MARK: - Coreset

if coresetN > 0 {
    let features = Tensor(randomNormal: [coresetN, dimension], using: &rng)
    let projected = min(128, dimension)
    print("coreset: [\(coresetN), \(dimension)] -> \(coresetCount), projection \(projected)")
    // Peer: one pass over the projected points per step, i.e. the memory traffic floor.
    let points = Tensor(randomNormal: [coresetN, projected], using: &rng)
    let stream = best(5) {
        var sum: Float = 0
        points.withUnsafeBufferPointer { p in
            var acc = SIMD16<Float>()
            var i = 0
            while i + 16 <= p.count {
                acc += UnsafeRawPointer(p.baseAddress! + i).loadUnaligned(as: SIMD16<Float>.self)
                i += 16
            }
            sum = acc.sum()
        }
        if sum == .infinity { print("") }
    }
    print("  peer: one read of the projected points \(format(stream * 1e3, 2)) ms x \(coresetCount) steps = \(format(stream * Double(coresetCount), 2)) s")
    for (name, pool) in pools {
        let clock = ContinuousClock()
        var picked: [Int] = []
        let elapsed = clock.measure {
            picked = Coreset.greedyKCenter(features, count: coresetCount, seed: 0, pool: pool)
        }
        print("  \(name): \(elapsed) (\(picked.count) indices)")
    }
}

// MARK: - Gaussian

if runGaussian {
    let positions = 784, dims = 200, images = 50
    let train = (0..<images).map { _ in Tensor(randomNormal: [positions, dims], using: &rng) }
    print("PositionGaussian: \(images) images x [\(positions), \(dims)]")
    for (name, pool) in pools {
        let clock = ContinuousClock()
        var model: PositionGaussian?
        let fit = clock.measure { model = PositionGaussian(features: train, pool: pool) }
        let score = best(3) { _ = model!.mahalanobis(train[0], pool: pool) }
        print("  \(name): fit \(fit), score one map \(format(score * 1e3, 2)) ms")
    }
}
