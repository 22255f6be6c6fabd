// layer-profile: where a frozen backbone's forward time goes, layer by layer (one thread,
// batch 1, 224x224, median of several runs). A tool for kernel work, not a benchmark of record.
//
//   swift run -c release layer-profile [resnet18|efficientnet-lite0|compact] [threads] [--cold-weights]
//       [--forward-only] [--call-overhead] [--pool-overhead] [--pool-trace] [--all-convs] [--stem-loop] ...
//
// --cold-weights: what each block loses inside the network to weights evicted since the last
// image (its call there, against an immediate repeat and a call with only its weights warmed).
import Foundation
import NeuralNet
import TensorCore

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

let name = CommandLine.arguments.dropFirst().first ?? "efficientnet-lite0"
let threads = CommandLine.arguments.count > 2 ? Int(CommandLine.arguments[2]) ?? 1 : 1
guard let architecture = BackboneArchitecture(rawValue: name) else { fatalError("unknown architecture \(name)") }
let network = architecture.make(seed: 1).frozen()
let pool = ThreadPool(threadCount: threads)
var generator = Xoshiro256(seed: 2)
let input = Tensor(randomNormal: [1, 224, 224, 3], using: &generator)
// The whole forward only (for comparing builds run one after another).
if CommandLine.arguments.contains("--forward-only") {
    var rng = Xoshiro256(seed: 5)
    for batch in [1, 8] {
        let x = Tensor(randomNormal: [batch, 224, 224, 3], using: &rng)
        _ = network.features(x, pool: pool)
        var times: [Double] = []
        for _ in 0..<(batch == 1 ? 40 : 6) {
            let t0 = now()
            _ = network.features(x, pool: pool)
            times.append(now() - t0)
        }
        times.sort()
        print(String(format: "forward batch %d: median %.2f ms", batch, times[times.count / 2] * 1000 / Double(batch)))
    }
    exit(0)
}
// Cost of one parallel call with an empty body on this pool (what every layer pays to fork
// and join its threads), best of 5 loops of 20 000 calls.
// Where the threads wait in a forward pass at batch 1: per parallel call (in call order),
// medians over 200 passes of the caller's part, the workers' part, the whole call, and the
// thread time idle in it (threads x call - caller - workers, exact for 2 threads); the
// caller's time between calls; and their sums against the whole pass. Then exits.
if CommandLine.arguments.contains("--pool-trace") {
    var rng = Xoshiro256(seed: 5)
    let x = Tensor(randomNormal: [1, 224, 224, 3], using: &rng)
    for _ in 0..<20 { _ = network.features(x, pool: pool) }
    var passes: [(wall: Double, calls: [ParallelCallTiming], start: UInt64, end: UInt64)] = []
    for _ in 0..<200 {
        let t0 = now()
        let start = DispatchTime.now().uptimeNanoseconds
        let (_, calls) = pool.recordingCalls { _ = network.features(x, pool: pool) }
        passes.append((now() - t0, calls, start, DispatchTime.now().uptimeNanoseconds))
    }
    func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
    let count = passes[0].calls.count
    let same = passes.filter { $0.calls.count == count }
    func us(_ f: @escaping (ParallelCallTiming) -> UInt64) -> (Int) -> Double { { i in median(same.map { Double(f($0.calls[i])) / 1000 }) } }
    let caller = us { $0.callerEnd - $0.start }, worker = us { $0.workerEnd &- $0.workerStart }, total = us { $0.end - $0.start }
    let gap: (Int) -> Double = { i in
        median(same.map { Double($0.calls[i].start - (i == 0 ? $0.start : $0.calls[i - 1].end)) / 1000 })
    }
    var sums = (caller: 0.0, worker: 0.0, total: 0.0, idle: 0.0, gaps: 0.0)
    print("call   caller us  workers us    call us  idle us  gap before us")
    for i in 0..<count {
        let idle = Double(threads) * total(i) - caller(i) - worker(i)
        print(String(format: "%4d %10.1f %11.1f %10.1f %8.1f %14.1f", i, caller(i), worker(i), total(i), idle, gap(i)))
        sums.caller += caller(i); sums.worker += worker(i); sums.total += total(i); sums.idle += idle; sums.gaps += gap(i)
    }
    let tail = median(same.map { Double($0.end - ($0.calls.last?.end ?? $0.start)) / 1000 })
    print(String(format: "%d calls in %d of 200 passes: calls %.1f us, idle %.1f us thread time, between calls %.1f us, after the last %.1f us; pass median %.1f us",
                 count, same.count, sums.total, sums.idle, sums.gaps, tail, median(same.map { $0.wall }) * 1e6))
    exit(0)
}

if CommandLine.arguments.contains("--pool-overhead") {
    for (label, call) in [("parallelRanges", { pool.parallelRanges(threads) { _ in } }),
                          ("parallelChunks", { pool.parallelChunks(64, chunk: 4) { _ in } })] as [(String, () -> Void)] {
        var best = 1e9
        for _ in 0..<5 {
            let t0 = now()
            for _ in 0..<20_000 { call() }
            best = min(best, (now() - t0) / 20_000)
        }
        print(String(format: "%@ on %d threads, empty body: %.2f us per call", label, threads, best * 1e6))
    }
    exit(0)
}
// Per-call cost of the direct kernel on tiny problems (what band-by-band blocks pay per band).
if CommandLine.arguments.contains("--call-overhead") {
    var rng = Xoshiro256(seed: 3)
    for (cin, cout, pix) in (CommandLine.arguments.contains("--tiny") ? [(8, 8, 4), (8, 8, 4), (8, 8, 4)] : [(8, 8, 4), (32, 96, 4), (96, 32, 4), (32, 96, 448)]) {
        let w = Tensor(randomNormal: [1, 1, cin, cout], using: &rng)
        let packed = PackedConvWeights(w)
        let x = Tensor(randomNormal: [pix * cin], using: &rng), b = Tensor(randomNormal: [cout], using: &rng)
        var out = [Float](repeating: 0, count: pix * cout)
        let g = ConvGeometry(batch: 1, height: 1, width: pix, inChannels: cin, outChannels: cout, kernelHeight: 1, kernelWidth: 1)
        var best = 1e9
        for _ in 0..<5 {
            let t0 = now()
            x.withUnsafeBufferPointer { xp in b.withUnsafeBufferPointer { bp in out.withUnsafeMutableBufferPointer { op in
                for _ in 0..<10000 {
                    directConvForward(xp.baseAddress!, weights: packed, bias: bp.baseAddress!, residual: nil, output: op.baseAddress!,
                                      geometry: g, activation: .relu6, pool: nil)
                }
            } } }
            best = min(best, (now() - t0) / 10000)
        }
        let flops = Double(2 * pix * cin * cout)
        print(String(format: "directConvForward 1x1 %d->%d, %d pixels: %.2f us per call (%.1f GF/s)", cin, cout, pix, best * 1e6, flops / best * 1e-9))
    }
    exit(0)
}
var totals = [Double](repeating: 0, count: network.layers.count)
var samples = [[Double]](repeating: [], count: network.layers.count)
for _ in 0..<7 {
    var x = input
    for (index, layer) in network.layers.enumerated() {
        let t0 = now()
        x = layer(x, pool: pool)
        samples[index].append(now() - t0)
    }
}
var sum = 0.0
for (index, layer) in network.layers.enumerated() {
    let median = samples[index].sorted()[samples[index].count / 2] * 1000
    sum += median
    var what = ""
    switch layer {
    case .maxPool: what = "maxpool"
    case .block(let block):
        what = block.convolutions.map { c in
            let k = c.weight.shape
            return "\(k[0])x\(k[1])\(c.groups > 1 ? "dw" : "") \(k[2] * c.groups)->\(k[3])/\(c.stride.0)"
        }.joined(separator: ", ")
    }
    totals[index] = median
    print(String(format: "%3d %8.2f ms  %@", index, median, what))
}
print(String(format: "total %.1f ms (%.1f images/s) on %d thread(s)", sum, 1000 / sum, threads))

/// Runs `body` on a seeded batch-1 input for `seconds` (long enough for `perf record`) and
/// prints the median time.
func repeatFor(_ seconds: Double, _ label: String, _ body: (Tensor) -> Void) {
    var rng = Xoshiro256(seed: 8)
    let x = Tensor(randomNormal: [1, 224, 224, 3], using: &rng)
    var times: [Double] = []
    let start = now()
    while now() - start < seconds {
        let t0 = now()
        body(x)
        times.append(now() - t0)
    }
    times.sort()
    print(String(format: "%@: median %.3f ms over %d runs", label, times[times.count / 2] * 1000, times.count))
}
if CommandLine.arguments.contains("--stem-loop"), case .block(let stem) = network.layers[0] {
    repeatFor(3, "stem alone") { _ = stem($0, pool: pool) }
}
if CommandLine.arguments.contains("--forward-loop") {
    repeatFor(5, "forward loop") { _ = network.features($0, pool: pool) }
}

// The head: global average pool and the classifier, batch 1.
if let classifier = network.classifier {
    var rng = Xoshiro256(seed: 6)
    let embedding = Tensor(randomNormal: [1, classifier.weight.shape[1]], using: &rng)
    var best = 1e9
    for _ in 0..<15 {
        let t0 = now()
        _ = matmul(embedding, classifier.weight, transposeB: true, pool: pool)
        best = min(best, now() - t0)
    }
    print(String(format: "classifier %@ at batch 1: %.3f ms", "\(classifier.weight.shape)", best * 1000))
}

// Few-row products: unpacked (automatic) vs packed 4x24 kernel.
if CommandLine.arguments.contains("--small-rows") {
    var rng = Xoshiro256(seed: 7)
    for (n, k) in [(1000, 1280), (1000, 320), (128, 1280), (4096, 384)] {
        for tb in [true, false] {
            let b = tb ? Tensor(randomNormal: [n, k], using: &rng) : Tensor(randomNormal: [k, n], using: &rng)
            for m in [1, 2, 4, 8, 16] {
                let a = Tensor(randomNormal: [m, k], using: &rng)
                var c = [Float](repeating: 0, count: m * n)
                var best = [1e9, 1e9]
                for _ in 0..<9 {
                    for (index, kernel) in [GEMMKernel.automatic, .rows4x24].enumerated() {
                        let t0 = now()
                        a.withUnsafeBufferPointer { a in b.withUnsafeBufferPointer { b in c.withUnsafeMutableBufferPointer { c in
                            sgemm(transposeA: false, transposeB: tb, m: m, n: n, k: k, alpha: 1, a: a.baseAddress, lda: k,
                                  b: b.baseAddress, ldb: tb ? k : n, beta: 0, c: c.baseAddress, ldc: n, pool: pool, kernel: kernel)
                        } } }
                        best[index] = min(best[index], now() - t0)
                    }
                }
                print(String(format: "m=%2d n=%4d k=%4d %@: unpacked %.3f ms, packed %.3f ms", m, n, k, tb ? "Bt" : "B ",
                             best[0] * 1000, best[1] * 1000))
            }
        }
    }
}

// The whole forward at batch 1 and 8, as the backbone benchmark runs it.
for batch in [1, 8] {
    var rng = Xoshiro256(seed: 5)
    let x = Tensor(randomNormal: [batch, 224, 224, 3], using: &rng)
    _ = network.features(x, pool: pool)
    var times: [Double] = []
    for _ in 0..<(batch == 1 ? 15 : 4) {
        let t0 = now()
        _ = network.features(x, pool: pool)
        times.append(now() - t0)
    }
    times.sort()
    print(String(format: "forward batch %d: median %.1f ms, %.1f images/s", batch, times[times.count / 2] * 1000,
                 Double(batch) / times[times.count / 2]))
}

// Per convolution kind: each block's convolutions run one by one (residuals ignored).
do {
    var kinds: [String: Double] = [:], kindFlops: [String: Double] = [:]
    var x = input
    for layer in network.layers {
        guard case .block(let block) = layer else { x = layer(x, pool: pool); continue }
        var h = x
        for conv in block.convolutions {
            let k = conv.weight.shape
            let kind = conv.groups > 1 ? "depthwise \(k[0])x\(k[1])/\(conv.stride.0)"
                : (k[0] == 1 && k[1] == 1 ? "pointwise" : "general \(k[0])x\(k[1])/\(conv.stride.0)")
            var best = 1e9
            var y = h
            for _ in 0..<5 {
                let t0 = now()
                y = conv(h, pool: pool)
                best = min(best, now() - t0)
            }
            kinds[kind, default: 0] += best * 1000
            let flops = 2.0 * Double(y.count * k[0] * k[1] * k[2])
            kindFlops[kind, default: 0] += flops
            if CommandLine.arguments.contains("--all-convs") {
                print(String(format: "  %-16@ %3dx%-3d %4d->%-4d %6.3f ms %5.1f GF/s", kind as NSString, y.shape[1], y.shape[2],
                             k[2] * conv.groups, k[3], best * 1000, flops / best * 1e-9))
            } else if kind == "pointwise" {
                print(String(format: "  pointwise %3dx%-3d %4d->%-4d %6.3f ms %5.1f GF/s", y.shape[1], y.shape[2], k[2], k[3],
                             best * 1000, flops / best * 1e-9))
            }
            h = y
        }
        var bestBlock = 1e9
        for _ in 0..<5 {
            let t0 = now()
            _ = layer(x, pool: pool)
            bestBlock = min(bestBlock, now() - t0)
        }
        if CommandLine.arguments.contains("--all-convs") { print(String(format: "  block, best of 5: %.3f ms", bestBlock * 1000)) }
        x = layer(x, pool: pool)
    }
    for (kind, ms) in kinds.sorted(by: { $0.value > $1.value }) {
        print(String(format: "%-22@ %7.2f ms %6.1f GF/s", kind as NSString, ms, kindFlops[kind]! / ms * 1e-6))
    }
}

// Direct kernel vs im2col + sgemm, same shapes, interleaved (ratio > 1: direct is faster).
do {
    let shapes: [(String, Int, Int, Int, Int, Int, Int)] = [  // name, H, Cin, Cout, K, stride, batch
        ("pw 112 16->96", 112, 16, 96, 1, 1, 1), ("pw 28 16->96", 28, 16, 96, 1, 1, 1),
        ("pw 56 24->144", 56, 24, 144, 1, 1, 1), ("pw 28 24->144", 28, 24, 144, 1, 1, 1),
        ("pw 28 144->144", 28, 144, 144, 1, 1, 1),
        ("pw 56 144->24", 56, 144, 24, 1, 1, 1), ("pw 28 240->40", 28, 240, 40, 1, 1, 1),
        ("pw 14 480->112", 14, 480, 112, 1, 1, 1), ("pw 7 1152->192", 7, 1152, 192, 1, 1, 1),
        ("pw 7 320->1280", 7, 320, 1280, 1, 1, 1), ("3x3 56 64->64", 56, 64, 64, 3, 1, 1),
        ("3x3 28 128->128", 28, 128, 128, 3, 1, 1), ("3x3 14 256->256", 14, 256, 256, 3, 1, 1),
        ("3x3 7 512->512", 7, 512, 512, 3, 1, 1), ("3x3/2 56 64->128", 56, 64, 128, 3, 2, 1),
        ("7x7/2 224 3->64", 224, 3, 64, 7, 2, 1), ("3x3/2 224 3->32", 224, 3, 32, 3, 2, 1),
    ]
    var rng = Xoshiro256(seed: 4)
    for (label, h, cin, cout, k, s, n) in shapes {
        let g = ConvGeometry(batch: n, height: h, width: h, inChannels: cin, outChannels: cout, kernelHeight: k,
                             kernelWidth: k, stride: (s, s), padding: k == 1 ? .valid : .symmetric(k / 2))
        let x = Tensor(randomNormal: [n, h, h, cin], using: &rng), w = Tensor(randomNormal: [k, k, cin, cout], using: &rng)
        let b = Tensor(randomNormal: [cout], using: &rng)
        let packed = PackedConvWeights(w)
        var bestOld = 1e9, bestNew = 1e9
        for _ in 0..<7 {
            var t0 = now()
            _ = conv2dForwardGEMM(x, weight: w, bias: b, geometry: g, activation: .relu, pool: pool)
            bestOld = min(bestOld, now() - t0)
            t0 = now()
            _ = conv2dForward(x, weight: w, bias: b, geometry: g, activation: .relu, pool: pool, packed: packed)
            bestNew = min(bestNew, now() - t0)
        }
        let gflop = 2.0 * Double(n * g.outHeight * g.outWidth * cout * k * k * cin) * 1e-9
        print(String(format: "%-18@ gemm %7.3f ms %5.1f GF/s | direct %7.3f ms %5.1f GF/s | ratio %.2f", label as NSString,
                     bestOld * 1000, gflop / bestOld, bestNew * 1000, gflop / bestNew, bestOld / bestNew))
    }
}

// Micro: one pointwise convolution with and without its epilogue.
do {
    let g = ConvGeometry(batch: 1, height: 112, width: 112, inChannels: 16, outChannels: 96, kernelHeight: 1, kernelWidth: 1)
    var rng = Xoshiro256(seed: 3)
    let x = Tensor(randomNormal: [1, 112, 112, 16], using: &rng), w = Tensor(randomNormal: [1, 1, 16, 96], using: &rng)
    let b = Tensor(randomNormal: [96], using: &rng)
    for (label, bias, act) in [("no epilogue", nil, Activation.none), ("bias", b, .none), ("bias+relu6", b, .relu6)] as [(String, Tensor?, Activation)] {
        var best = 1e9
        for _ in 0..<10 {
            let t0 = now()
            _ = conv2dForward(x, weight: w, bias: bias, geometry: g, activation: act, pool: pool)
            best = min(best, now() - t0)
        }
        print(String(format: "pointwise 112x112 16->96, %@: %.2f ms", label, best * 1000))
    }
}

// Cold weights: per block, its call inside the network, an immediate repeat (everything
// warm), and the call after a 2x2 input has run through the block (its packed weights
// warm, the activations as in the network); medians of 15 forward passes.
if CommandLine.arguments.contains("--cold-weights") {
    var first = [[Double]](repeating: [], count: network.layers.count)
    var again = [[Double]](repeating: [], count: network.layers.count)
    var warmed = [[Double]](repeating: [], count: network.layers.count)
    var sink: Float = 0
    for _ in 0..<15 {
        var x = input
        for (index, layer) in network.layers.enumerated() {
            var t0 = now()
            let y = layer(x, pool: pool)
            first[index].append(now() - t0)
            t0 = now()
            _ = layer(x, pool: pool)
            again[index].append(now() - t0)
            x = y
        }
        x = input
        for (index, layer) in network.layers.enumerated() {
            if case .block = layer { sink += layer(Tensor(zeros: [1, 2, 2, x.shape[3]]), pool: pool).scalars[0] }
            let t0 = now()
            x = layer(x, pool: pool)
            warmed[index].append(now() - t0)
        }
    }
    func median(_ a: [Double]) -> Double { a.sorted()[a.count / 2] * 1000 }
    var sums = (0.0, 0.0, 0.0)
    for i in 0..<network.layers.count {
        sums.0 += median(first[i]); sums.1 += median(again[i]); sums.2 += median(warmed[i])
        print(String(format: "%3d in network %.3f  repeated %.3f  weights warmed %.3f ms", i, median(first[i]),
                     median(again[i]), median(warmed[i])))
    }
    print(String(format: "sum: in network %.2f  repeated %.2f  weights warmed %.2f ms%@", sums.0, sums.1, sums.2,
                 sink == 0 ? "" : " "))
}
