// winograd-bench: Winograd F(2x2, 3x3) and F(4x4, 3x3) (winogradConv3x3) against
// conv2dForward -- the direct kernel over packed weights (DirectConv.swift; im2col + GEMM
// before 4d0f652) -- on the 3x3 stride-1 convolutions of ResNet-18 at 224x224, with the same
// fused epilogue (bias + residual + ReLU, as in a basic block's second convolution).
//
//   swift run -c release winograd-bench [rounds]
//
// Each round runs the direct kernel, Winograd F(2x2, 3x3) and F(4x4, 3x3) back to back. Times are the
// minimum over the rounds (the least disturbed by other users of the machine), speed-ups
// the median of the per-round ratios.
//
// GFLOP/s are "effective": direct-convolution FLOPs 2 * (N*OH*OW) * Cout * (9*Cin) / time,
// so the two kernels are comparable. The error is max |y - reference| / max |reference| at
// batch 1 (reference: referenceConv2d in Double).
import Foundation
import NeuralNet
import TensorCore

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

let pairs = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 9

func relativeError(_ actual: Tensor, _ expected: [Float]) -> Float {
    let scale = expected.map { abs($0) }.max()!
    return zip(actual.scalars, expected).map { abs($0 - $1) }.max()! / scale
}

let shapes = [(56, 64), (28, 128), (14, 256), (7, 512)]
print("rounds \(pairs); min times; speed-up = median over rounds of direct time / Winograd time")
print("shape              batch thr | direct ms GF/s | F(2x2) ms  GF/s speed-up | F(4x4) ms  GF/s speed-up | err F2  err F4")
for threads in [1, 2] {
    let pool = ThreadPool(threadCount: threads)
    for (size, channels) in shapes {
        for batch in [1, 8] {
            let g = ConvGeometry(batch: batch, height: size, width: size, inChannels: channels, outChannels: channels,
                                 kernelHeight: 3, kernelWidth: 3, padding: .symmetric(1))
            var rng = Xoshiro256(seed: UInt64(size * 10 + batch))
            let x = Tensor(randomNormal: [batch, size, size, channels], using: &rng)
            // He-initialised weights keep the output at the input's scale, as in a trained network.
            let w = Tensor(randomNormal: [3, 3, channels, channels], standardDeviation: (2 / Float(9 * channels)).squareRoot(),
                           using: &rng)
            let b = Tensor(randomNormal: [channels], using: &rng)
            let r = Tensor(randomNormal: [batch, size, size, channels], using: &rng)
            let tw = now()
            let u2 = WinogradWeights(w), u4 = WinogradWeights(w, tile: .f4x4)
            if batch == 1 && threads == 1 {
                print(String(format: "  (filter transforms F2 + F4 for %dx%d: %.1f ms)", channels, channels, (now() - tw) * 1000))
            }
            var errorText = "     -       -"
            if batch == 1 && threads == 1 {
                let reference = referenceConv2d(x, weight: w, bias: b, geometry: g).scalars
                let expected = zip(reference, r.scalars).map { Activation.relu.apply($0 + $1) }
                let e2 = relativeError(winogradConv3x3(x, weights: u2, bias: b, geometry: g, activation: .relu, residual: r, pool: pool), expected)
                let e4 = relativeError(winogradConv3x3(x, weights: u4, bias: b, geometry: g, activation: .relu, residual: r, pool: pool), expected)
                errorText = String(format: "%.1e %.1e", e2, e4)
            }
            var times: [[Double]] = [[], [], []], ratios: [[Double]] = [[], []]
            // one warm-up round
            for round in 0...pairs {
                var t = [now()]
                _ = conv2dForward(x, weight: w, bias: b, geometry: g, activation: .relu, residual: r, pool: pool)
                t.append(now())
                _ = winogradConv3x3(x, weights: u2, bias: b, geometry: g, activation: .relu, residual: r, pool: pool)
                t.append(now())
                _ = winogradConv3x3(x, weights: u4, bias: b, geometry: g, activation: .relu, residual: r, pool: pool)
                t.append(now())
                if round == 0 { continue }
                for k in 0..<3 { times[k].append(t[k + 1] - t[k]) }
                for k in 0..<2 { ratios[k].append(times[0].last! / times[k + 1].last!) }
            }
            let flops = 2.0 * Double(batch * size * size) * Double(channels) * Double(9 * channels)
            let best = times.map { $0.min()! }
            print(String(format: "%3dx%-3dx%-4d->%-4d %3d %3d | %9.2f %4.1f | %9.2f %5.1f %7.2fx | %9.2f %5.1f %7.2fx | %@",
                         size, size, channels, channels, batch, threads, best[0] * 1000, flops / best[0] * 1e-9,
                         best[1] * 1000, flops / best[1] * 1e-9, median(ratios[0]),
                         best[2] * 1000, flops / best[2] * 1e-9, median(ratios[1]), errorText))
        }
    }
}
