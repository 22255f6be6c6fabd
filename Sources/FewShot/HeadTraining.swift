// Episodic training of a projection head on frozen embeddings of base classes: each step
// draws an N-way K-shot episode, projects support and queries with the head, and descends
// the cosine prototypical loss (the classifier's own decision rule) with AdamW.
import NeuralNet
import TensorCore

/// One labelled base class for head training: for each image, the raw embeddings of one
/// or more views of it (e.g. flips and quarter turns), `images[i][view]` `[D]`.
///
/// Support and queries of an episode are always different images; views only vary how
/// each image is seen, so a query is never a flipped copy of a support example.
public struct BaseClass: Sendable {
    /// The class name (for logs and the head's metadata).
    public var name: String
    /// `[images][views][D]` raw embeddings.
    public var images: [[[Float]]]

    public init(name: String, images: [[[Float]]]) {
        precondition(images.allSatisfy { !$0.isEmpty }, "BaseClass \(name): an image without views")
        self.name = name
        self.images = images
    }
}

/// The settings of episodic head training.
public struct HeadTrainingOptions: Sendable, Codable, Equatable {
    /// Classes per training episode.
    public var ways = 10
    /// Support examples per class (1 was at least as good as 5 for 1- and 5-shot evaluation
    /// in the seed-0 sweep, README).
    public var shots = 1
    /// Query examples per class.
    public var queries = 10
    /// Training episodes (optimiser steps). Longer training fitted the base classes
    /// (training accuracy near 100 %) and lost accuracy on other data sets.
    public var episodes = 300
    /// Rank of the residual update, or output width of a plain head.
    public var rank = 16
    /// Residual form (identity at the start) or plain `V x + b`.
    public var residual = true
    /// Exponent of the power transform in front of the head.
    public var power: Float = 0.2
    /// Peak AdamW learning rate (cosine decay to 0 after a 5 % warm-up).
    public var learningRate: Float = 3e-4
    /// AdamW's decoupled weight decay on `V` and `U` (pulls a residual head towards the identity).
    public var weightDecay: Float = 0.01
    /// Inverse temperature of the training softmax over cosines.
    public var temperature: Float = 10
    /// Centre each episode on its support mean, as the evaluation does.
    public var centerOnSupport = true
    /// Seed of the initialisation and the episode draw.
    public var seed: UInt64 = 0

    public init() {}
}

/// What training reports every so often.
public struct HeadTrainingProgress: Sendable {
    /// Episodes done.
    public var episode: Int
    /// Mean loss and query accuracy over the episodes since the last report.
    public var loss: Double, accuracy: Double
}

/// Episodic training of a ``ProjectionHead``.
public enum HeadTrainer {
    /// Trains a head on `classes` (each needs `shots + queries` images; others are skipped).
    ///
    /// Deterministic for a given seed and data (the kernels give the same results at any
    /// thread count).
    ///
    /// - Parameters:
    ///   - classes: base classes with raw embeddings, all of one width `D`.
    ///   - options: see ``HeadTrainingOptions``.
    ///   - reportEvery: episodes between calls of `progress`.
    /// - Returns: the trained head.
    public static func train(_ classes: [BaseClass], options: HeadTrainingOptions, reportEvery: Int = 100,
                             progress: (HeadTrainingProgress) -> Void = { _ in }) -> ProjectionHead {
        let o = options
        let eligible = classes.filter { $0.images.count >= o.shots + o.queries }
        precondition(eligible.count >= o.ways, "HeadTrainer: \(eligible.count) classes have \(o.shots + o.queries) images, \(o.ways) ways needed")
        let d = eligible[0].images[0][0].count
        precondition(eligible.allSatisfy { $0.images.allSatisfy { $0.allSatisfy { $0.count == d } } }, "HeadTrainer: embeddings of differing widths")
        // The power transform is fixed, so it is applied once here rather than per episode.
        let powered = eligible.map { $0.images.map { $0.map { powerTransformed($0, o.power) } } }

        var generator = Xoshiro256(seed: o.seed)
        let start = o.residual ? ProjectionHead.identity(dimension: d, rank: o.rank, power: o.power, using: &generator)
                               : ProjectionHead.plain(inputDimension: d, outputDimension: o.rank, power: o.power, using: &generator)
        let parameters = HeadParameters(start)
        let optimizer = AdamW(parameters: parameters.all, learningRate: o.learningRate, weightDecay: o.weightDecay)
        let schedule = CosineSchedule(base: o.learningRate, warmup: o.episodes / 20, total: o.episodes)

        var lossSum = 0.0, accuracySum = 0.0, counted = 0
        for episode in 0..<o.episodes {
            let chosen = Array(powered.indices.shuffled(using: &generator).prefix(o.ways))
            var support: [Float] = [], query: [Float] = []
            var supportLabels: [Int] = [], queryLabels: [Int] = []
            for (label, c) in chosen.enumerated() {
                let picks = powered[c].indices.shuffled(using: &generator)
                for (index, image) in picks.prefix(o.shots + o.queries).enumerated() {
                    let views = powered[c][image]
                    let view = views[Int(generator.next() % UInt64(views.count))]
                    if index < o.shots { support += view; supportLabels.append(label) } else { query += view; queryLabels.append(label) }
                }
            }
            let s = parameters.project(Variable(Tensor(support, shape: [supportLabels.count, d])))
            let q = parameters.project(Variable(Tensor(query, shape: [queryLabels.count, d])))
            let loss = cosinePrototypicalLoss(support: s, supportLabels: supportLabels, query: q, queryLabels: queryLabels,
                                              ways: o.ways, scale: o.temperature, centerOnSupport: o.centerOnSupport)
            optimizer.zeroGradients()
            loss.backward()
            optimizer.learningRate = schedule.rate(at: episode)
            optimizer.step()

            lossSum += Double(loss.value.scalar)
            accuracySum += episodeAccuracy(support: s.value, supportLabels: supportLabels, query: q.value,
                                           queryLabels: queryLabels, ways: o.ways, center: o.centerOnSupport)
            counted += 1
            if (episode + 1) % Swift.max(reportEvery, 1) == 0 || episode + 1 == o.episodes {
                progress(HeadTrainingProgress(episode: episode + 1, loss: lossSum / Double(counted), accuracy: accuracySum / Double(counted)))
                lossSum = 0; accuracySum = 0; counted = 0
            }
        }
        return parameters.head(like: start)
    }

    /// Query accuracy of the nearest normalised prototype, for the training log.
    static func episodeAccuracy(support: Tensor, supportLabels: [Int], query: Tensor, queryLabels: [Int], ways: Int,
                                center: Bool) -> Double {
        let d = support.shape[1]
        let s = support.scalars, q = query.scalars
        let rows = { (x: [Float], i: Int) in Array(x[(i * d)..<((i + 1) * d)]) }
        let supportRows = supportLabels.indices.map { rows(s, $0) }
        let mean = center ? meanVector(supportRows) : [Float](repeating: 0, count: d)
        let prepared = { (v: [Float]) in normalizedVector(zip(v, mean).map { $0 - $1 }) }
        var sums = [[Float]](repeating: [Float](repeating: 0, count: d), count: ways)
        for (row, label) in zip(supportRows, supportLabels) { sums[label] = vectorSum(sums[label], prepared(row)) }
        let prototypes = sums.map(normalizedVector)
        var correct = 0
        for (i, label) in queryLabels.enumerated() {
            let v = prepared(rows(q, i))
            let scores = prototypes.map { dot($0, v) }
            if scores.indices.max(by: { scores[$0] < scores[$1] }) == label { correct += 1 }
        }
        return Double(correct) / Double(Swift.max(queryLabels.count, 1))
    }
}

/// A head's tensors as trainable variables, and its differentiable forward pass.
final class HeadParameters {
    let residual: Bool
    let scale: Variable?, down: Variable, up: Variable?, bias: Variable

    init(_ head: ProjectionHead) {
        let d = head.inputDimension, r = head.rank
        residual = head.residual
        down = Variable(Tensor(head.down, shape: [r, d]), requiresGradient: true)
        bias = Variable(Tensor(head.bias, shape: [head.outputDimension]), requiresGradient: true)
        scale = head.residual ? Variable(Tensor(head.scale, shape: [d]), requiresGradient: true) : nil
        up = head.residual ? Variable(Tensor(head.up, shape: [d, r]), requiresGradient: true) : nil
    }

    var all: [Variable] { [down, bias] + [scale, up].compactMap { $0 } }

    /// `[N, D]` power-transformed rows to `[N, outputDimension]`, as ``ProjectionHead/project(_:)``.
    func project(_ x: Variable) -> Variable {
        guard residual, let scale, let up else { return linear(x, weight: down, bias: bias) }
        var y = scaledColumns(x, scale)
        if down.shape[0] > 0 { y = y + linear(x, weight: down, bias: nil).then { linear($0, weight: up, bias: nil) } }
        return addRowVector(y, bias)
    }

    func head(like start: ProjectionHead) -> ProjectionHead {
        ProjectionHead(inputDimension: start.inputDimension, rank: start.rank, residual: residual, power: start.power,
                       scale: scale?.value.scalars ?? [], down: down.value.scalars, up: up?.value.scalars ?? [],
                       bias: bias.value.scalars)
    }
}

extension Variable {
    /// `f(self)`, for reading a chain of layers left to right.
    fileprivate func then(_ f: (Variable) -> Variable) -> Variable { f(self) }
}
