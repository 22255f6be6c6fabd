// train-bench: trains the compact network from scratch on NEU-CLS (hot-rolled steel
// surface defects, 6 classes x 300 images) with a fixed, seeded train/test split, and
// prints the test accuracy and the wall time; then times one training step at batch 32.
//
//   swift run -c release train-bench ../../shared/data/neu-cls [--size 64] [--epochs 12]
//       [--train-per-class 200] [--seed 0]
import Foundation
import NeuralNet
import TensorCore
@_spi(Engine) import VisualInspection

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard let root = arguments.first, !root.hasPrefix("--") else {
    print("usage: train-bench NEU_CLS_DIR [--size 64] [--epochs 12] [--train-per-class 200] [--seed 0]")
    exit(3)
}
@MainActor func option(_ name: String, _ fallback: Int) -> Int {
    guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count, let v = Int(arguments[i + 1]) else { return fallback }
    return v
}
let size = option("--size", 64), epochs = option("--epochs", 12), trainPerClass = option("--train-per-class", 200)
let seed = UInt64(option("--seed", 0))

let classes = try FileManager.default.contentsOfDirectory(atPath: root).filter { !$0.hasPrefix(".") }.sorted()
var generator = Xoshiro256(seed: seed)
var train: [(Tensor, Int)] = [], test: [(Tensor, Int)] = []
let loadStart = now()
for (label, name) in classes.enumerated() {
    let files = try FileManager.default.contentsOfDirectory(atPath: "\(root)/\(name)").filter { $0.hasSuffix(".jpg") }.sorted()
        .shuffled(using: &generator)
    for (index, file) in files.enumerated() {
        let image = try Image(contentsOfFile: "\(root)/\(name)/\(file)").grayscale().resized(width: size, height: size)
        let tensor = image.tensor(channels: 3, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]).reshaped([size, size, 3])
        if index < trainPerClass { train.append((tensor, label)) } else { test.append((tensor, label)) }
    }
}
print("NEU-CLS: \(classes.count) classes, \(train.count) training and \(test.count) test images at \(size)x\(size) "
      + "(split seed \(seed), loaded in \(String(format: "%.1f", now() - loadStart)) s)")

let network = CompactNet(classes: classes.count, using: &generator)
let batchSize = 32
let stepsPerEpoch = train.count / batchSize
let optimizer = AdamW(parameters: network.parameters, learningRate: 2e-3, weightDecay: 5e-4)
let schedule = CosineSchedule(base: 2e-3, minimum: 2e-5, warmup: stepsPerEpoch, total: epochs * stepsPerEpoch)
var augmentation = Augmentation()
augmentation.horizontalFlip = true; augmentation.verticalFlip = true
augmentation.maxBrightness = 0.1; augmentation.maxContrast = 0.1; augmentation.noise = 0.02
augmentation.minimumCropFraction = 0.8

func stack(_ images: [Tensor]) -> Tensor {
    Tensor(images.flatMap(\.scalars), shape: [images.count] + images[0].shape)
}

let trainStart = now()
var step = 0
for epoch in 0..<epochs {
    let order = train.indices.shuffled(using: &generator)
    var lossSum: Float = 0
    for b in 0..<stepsPerEpoch {
        let picks = order[(b * batchSize)..<((b + 1) * batchSize)].map { train[$0] }
        let images = stack(picks.map { augmentation($0.0, using: &generator) })
        optimizer.learningRate = schedule.rate(at: step)
        optimizer.zeroGradients()
        let loss = crossEntropy(network.forward(Variable(images), training: true).logits!, labels: picks.map(\.1))
        loss.backward()
        optimizer.step()
        lossSum += loss.value.scalars[0]
        step += 1
    }
    print("epoch \(epoch + 1)/\(epochs): mean loss \(String(format: "%.4f", lossSum / Float(stepsPerEpoch))), "
          + "\(String(format: "%.0f", now() - trainStart)) s")
}
let trainSeconds = now() - trainStart

let frozen = network.frozen()
var correct = 0
for start in stride(from: 0, to: test.count, by: 64) {
    let part = Array(test[start..<min(start + 64, test.count)])
    let predicted = frozen.features(stack(part.map(\.0))).logits!.argmax(alongAxis: 1)
    correct += zip(predicted, part.map(\.1)).filter { $0 == $1 }.count
}
print(String(format: "compact network from scratch on NEU-CLS: test accuracy %.1f %% (%d/%d), training %.0f s (%d steps of %d, %d epochs)",
             100 * Double(correct) / Double(test.count), correct, test.count, trainSeconds, step, batchSize, epochs))

for resolution in [size, 224] {
    var g = Xoshiro256(seed: 1)
    let net = CompactNet(classes: 6, using: &g)
    let opt = AdamW(parameters: net.parameters)
    let images = Tensor(randomNormal: [batchSize, resolution, resolution, 3], using: &g)
    let labels = (0..<batchSize).map { $0 % 6 }
    var times: [Double] = []
    for _ in 0..<3 {
        let t0 = now()
        opt.zeroGradients()
        crossEntropy(net.forward(Variable(images), training: true).logits!, labels: labels).backward()
        opt.step()
        times.append(now() - t0)
    }
    print(String(format: "one training step of the compact network, batch %d at %dx%d: %.0f ms (median of 3)",
                 batchSize, resolution, resolution, times.sorted()[1] * 1000))
}
