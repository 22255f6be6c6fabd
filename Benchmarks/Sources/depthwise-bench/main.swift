// depthwise-bench: the fused depthwise kernel (NeuralNet, Kernels/Depthwise.swift) against
// the kernel it replaced (per-pixel loop, per-tap bounds checks, SIMD16, then a separate
// bias + relu6 pass), on the depthwise layers of EfficientNet-Lite0 at 224x224, batch 1.
// Old and new run interleaved, sample by sample, so that load from other users of the
// machine hits both alike; the ratio of the medians is the figure to read.
//
//   swift run -c release depthwise-bench [samples]
import Foundation
@_spi(Benchmarks) import NeuralNet
import TensorCore

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

// MARK: - Baseline: the replaced kernel, copied from Conv2d.swift as of 71a9867.

func oldDepthwiseForward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                         _ g: ConvGeometry, pool: ThreadPool?) {
    let c = g.inChannels
    let rows = g.batch * g.outHeight
    let source = UnsafeSharedPointer(readOnly: x), weights = UnsafeSharedPointer(readOnly: w)
    let target = UnsafeSharedPointer(y)
    let body: @Sendable (Range<Int>) -> Void = { range in
        let x = source.pointer, w = weights.pointer, y = target.pointer
        for rowIndex in range {
            let n = rowIndex / g.outHeight, oy = rowIndex % g.outHeight
            for ox in 0..<g.outWidth {
                let out = y + (rowIndex * g.outWidth + ox) * c
                var c0 = 0
                while c0 + 16 <= c {
                    var acc = SIMD16<Float>(repeating: 0)
                    for ky in 0..<g.kernelHeight {
                        let iy = oy * g.strideY - g.padTop + ky * g.dilationY
                        if iy < 0 || iy >= g.height { continue }
                        for kx in 0..<g.kernelWidth {
                            let ix = ox * g.strideX - g.padLeft + kx * g.dilationX
                            if ix < 0 || ix >= g.width { continue }
                            let src = UnsafeRawPointer(x + ((n * g.height + iy) * g.width + ix) * c + c0)
                            let wt = UnsafeRawPointer(w + (ky * g.kernelWidth + kx) * c + c0)
                            acc = acc.addingProduct(src.loadUnaligned(as: SIMD16<Float>.self),
                                                    wt.loadUnaligned(as: SIMD16<Float>.self))
                        }
                    }
                    UnsafeMutableRawPointer(out + c0).storeBytes(of: acc, as: SIMD16<Float>.self)
                    c0 += 16
                }
                while c0 < c {
                    var acc: Float = 0
                    for ky in 0..<g.kernelHeight {
                        let iy = oy * g.strideY - g.padTop + ky * g.dilationY
                        if iy < 0 || iy >= g.height { continue }
                        for kx in 0..<g.kernelWidth {
                            let ix = ox * g.strideX - g.padLeft + kx * g.dilationX
                            if ix < 0 || ix >= g.width { continue }
                            acc = acc.addingProduct(x[((n * g.height + iy) * g.width + ix) * c + c0],
                                                    w[(ky * g.kernelWidth + kx) * c + c0])
                        }
                    }
                    out[c0] = acc
                    c0 += 1
                }
            }
        }
    }
    if let pool { pool.parallelRanges(rows, body) } else { body(0..<rows) }
}

/// The old second pass, bias + relu6 only (what the Lite0 depthwise layers use).
func oldEpilogue(_ out: UnsafeMutablePointer<Float>, rows: Int, channels: Int, bias: UnsafePointer<Float>,
                 pool: ThreadPool?) {
    let target = UnsafeSharedPointer(out), biasPointer = UnsafeSharedPointer(readOnly: bias)
    let lower = SIMD16<Float>(repeating: 0), upper = SIMD16<Float>(repeating: 6)
    let body: @Sendable (Range<Int>) -> Void = { range in
        let out = target.pointer, bias = biasPointer.pointer
        for r in range {
            let row = out + r * channels
            var c = 0
            while c + 16 <= channels {
                var v = UnsafeRawPointer(row + c).loadUnaligned(as: SIMD16<Float>.self)
                    + UnsafeRawPointer(bias + c).loadUnaligned(as: SIMD16<Float>.self)
                v = v.replacing(with: lower, where: v .< lower).replacing(with: upper, where: v .> upper)
                UnsafeMutableRawPointer(row + c).storeBytes(of: v, as: SIMD16<Float>.self)
                c += 16
            }
            while c < channels {
                row[c] = Activation.relu6.apply(row[c] + bias[c])
                c += 1
            }
        }
    }
    if let pool { pool.parallelRanges(rows, body) } else { body(0..<rows) }
}

/// The memory floor of a layer: read the input once, write the output once (no arithmetic
/// to speak of), split by rows like the kernels. A kernel near this time is memory-bound.
func streamFloor(_ x: UnsafePointer<Float>, count: Int, _ y: UnsafeMutablePointer<Float>, outCount: Int,
                 pool: ThreadPool) {
    let source = UnsafeSharedPointer(readOnly: x), target = UnsafeSharedPointer(y)
    let parts = 64
    pool.parallelRanges(parts) { range in
        var acc = SIMD8<Float>(repeating: 0)
        let lo = range.lowerBound * count / parts / 8 * 8, hi = range.upperBound * count / parts / 8 * 8
        var i = lo
        while i < hi {
            acc += UnsafeRawPointer(source.pointer + i).loadUnaligned(as: SIMD8<Float>.self)
            i += 8
        }
        let outLo = range.lowerBound * outCount / parts, outHi = range.upperBound * outCount / parts
        (target.pointer + outLo).update(repeating: acc.sum(), count: outHi - outLo)
    }
}

// MARK: - Shapes and timing

/// (input size, channels, kernel, stride, layers of this shape in Lite0)
let shapes: [(Int, Int, Int, Int, Int)] = [
    (112, 32, 3, 1, 1), (56, 144, 3, 1, 1), (14, 480, 3, 1, 2), (7, 1152, 3, 1, 1),
    (28, 240, 5, 1, 1), (14, 480, 5, 1, 1), (14, 672, 5, 1, 2), (7, 1152, 5, 1, 3),
    (112, 96, 3, 2, 1), (28, 240, 3, 2, 1),
    (56, 144, 5, 2, 1), (14, 672, 5, 2, 1),
]
let samples = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 31 : 31

let singleThread = ThreadPool(threadCount: 1)
for threads in [1, 2] {
    let pool = ThreadPool(threadCount: threads)
    print("\(threads) thread(s); median of \(samples) interleaved samples, bias + relu6")
    print("  shape                         old ms   new ms   ratio  floor ms" + (threads > 1 ? "  new 1-thread ms  scaling" : ""))
    var groupOld: [String: Double] = [:], groupNew: [String: Double] = [:]
    for (size, c, k, stride, count) in shapes {
        let g = ConvGeometry(batch: 1, height: size, width: size, inChannels: c, outChannels: c, kernelHeight: k,
                             kernelWidth: k, stride: (stride, stride), padding: .same, groups: c)
        var rng = Xoshiro256(seed: UInt64(size * c + k))
        let x = Tensor(randomNormal: [1, size, size, c], using: &rng)
        let w = Tensor(randomNormal: [k, k, 1, c], using: &rng)
        let b = Tensor(randomNormal: [c], using: &rng)
        let outCount = g.outHeight * g.outWidth * c
        let oldOut = UnsafeMutablePointer<Float>.allocate(capacity: outCount)
        let newOut = UnsafeMutablePointer<Float>.allocate(capacity: outCount)
        oldOut.initialize(repeating: 0, count: outCount)
        newOut.initialize(repeating: 0, count: outCount)
        // Repeat each timed call enough for ~1 ms samples.
        let repeats = max(1, 200_000 / (g.outHeight * g.outWidth * c * k * k / 100))
        var oldTimes: [Double] = [], newTimes: [Double] = [], floorTimes: [Double] = [], singleTimes: [Double] = []
        x.withUnsafeBufferPointer { xp in
            w.withUnsafeBufferPointer { wp in
                b.withUnsafeBufferPointer { bp in
                    let runOld = {
                        oldDepthwiseForward(xp.baseAddress!, wp.baseAddress!, oldOut, g, pool: pool)
                        oldEpilogue(oldOut, rows: g.outHeight * g.outWidth, channels: c, bias: bp.baseAddress!, pool: pool)
                    }
                    let runNew = {
                        depthwiseConvForward(xp.baseAddress!, weight: wp.baseAddress!, bias: bp.baseAddress, residual: nil,
                                             output: newOut, geometry: g, activation: .relu6, pool: pool)
                    }
                    runOld(); runNew()
                    for _ in 0..<samples {
                        var t0 = now()
                        for _ in 0..<repeats { runOld() }
                        oldTimes.append((now() - t0) / Double(repeats))
                        t0 = now()
                        for _ in 0..<repeats { runNew() }
                        newTimes.append((now() - t0) / Double(repeats))
                        t0 = now()
                        for _ in 0..<repeats {
                            streamFloor(xp.baseAddress!, count: xp.count, oldOut, outCount: outCount, pool: pool)
                        }
                        floorTimes.append((now() - t0) / Double(repeats))
                        if threads > 1 {
                            // The new kernel on one thread, for its own scaling.
                            t0 = now()
                            for _ in 0..<repeats {
                                depthwiseConvForward(xp.baseAddress!, weight: wp.baseAddress!, bias: bp.baseAddress,
                                                     residual: nil, output: newOut, geometry: g, activation: .relu6,
                                                     pool: singleThread)
                            }
                            singleTimes.append((now() - t0) / Double(repeats))
                        }
                    }
                }
            }
        }
        // The floor overwrote oldOut: compare a fresh run.
        x.withUnsafeBufferPointer { xp in
            w.withUnsafeBufferPointer { wp in
                b.withUnsafeBufferPointer { bp in
                    oldDepthwiseForward(xp.baseAddress!, wp.baseAddress!, oldOut, g, pool: pool)
                    oldEpilogue(oldOut, rows: g.outHeight * g.outWidth, channels: c, bias: bp.baseAddress!, pool: pool)
                }
            }
        }
        var maxDifference: Float = 0
        for i in 0..<outCount { maxDifference = max(maxDifference, abs(oldOut[i] - newOut[i])) }
        precondition(maxDifference < 1e-3, "old and new disagree by \(maxDifference) on \(g)")
        oldOut.deallocate(); newOut.deallocate()
        let oldMs = oldTimes.sorted()[samples / 2] * 1000, newMs = newTimes.sorted()[samples / 2] * 1000
        let name = "\(size)x\(size)x\(c) \(k)x\(k)/\(stride)" + (count > 1 ? " (x\(count))" : "")
        let floorMs = floorTimes.sorted()[samples / 2] * 1000
        var line = String(format: "  %-28@ %7.3f  %7.3f  %5.2fx  %7.3f", name as NSString, oldMs, newMs, oldMs / newMs, floorMs)
        if threads > 1 {
            let singleMs = singleTimes.sorted()[samples / 2] * 1000
            line += String(format: "  %7.3f  %5.2fx", singleMs, singleMs / newMs)
        }
        print(line)
        let group = "\(k)x\(k) s\(stride)"
        groupOld[group, default: 0] += oldMs * Double(count)
        groupNew[group, default: 0] += newMs * Double(count)
    }
    var totalOld = 0.0, totalNew = 0.0
    for group in ["3x3 s1", "5x5 s1", "3x3 s2", "5x5 s2"] {
        let o = groupOld[group]!, n = groupNew[group]!
        totalOld += o; totalNew += n
        print(String(format: "  Lite0 %@ layers: %6.2f -> %6.2f ms  %5.2fx", group, o, n, o / n))
    }
    print(String(format: "  Lite0 all depthwise: %6.2f -> %6.2f ms  %5.2fx\n", totalOld, totalNew, totalOld / totalNew))
}
