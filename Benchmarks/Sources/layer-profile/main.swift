// layer-profile: where a frozen backbone's forward time goes, layer by layer (one thread,
// batch 1, 224x224, median of several runs). A tool for kernel work, not a benchmark of record.
//
//   swift run -c release layer-profile [resnet18|efficientnet-lite0|compact] [threads]
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
