// Distilling a teacher backbone (EfficientNet-Lite0) into the compact network on
// generated images, so that the compact network's feature maps and pooled embedding can
// stand in for the teacher's in the anomaly scorer and the few-shot classifier.
//
// What is matched, and in which coordinates:
// - Feature maps at strides 4, 8 and 16 (the scorer uses 8 and 16). The student's maps are
//   at least as wide as the teacher's (32/64/128 against 24/40/112), so the teacher map is
//   carried into the student's channels by a *fixed* projection P `[Ct, Cs]`: student
//   channel j copies teacher channel j mod Ct, scaled by 1/sqrt(copies of that channel).
//   P has orthonormal rows, so distances between student features equal distances between
//   teacher features (what the scorer's nearest-neighbour search sees), and each student
//   channel is one teacher channel (what the few-shot power transform, applied per
//   coordinate, sees). No adapter is trained, so nothing has to be dropped afterwards.
// - The pooled embedding. The teacher's is wider (1280 against 256), so the target is its
//   projection onto the 256 principal axes of teacher embeddings of generated images,
//   estimated once before training: the closest 256-dimensional copy of its geometry.
// Each part's loss is its squared error divided by the target's energy (the fraction of
// the target not reproduced), so the parts are comparable whatever their scale; raw values,
// not per-location normalised ones, because the scorer's distances depend on magnitudes.
// The student trains against each target divided by its RMS (one number per part, measured
// on generated images before training): its batch norms start at scale 1 and Adam moves a
// scale by about the learning rate per step, far too slowly to reach the teacher's 5-30.
// The exported student has those numbers folded back into its weights
// (`CompactNet.scaleStageOutputs`), so it reproduces the teacher's own scales.
@_spi(Engine) import VisualInspection
import Synthesis
@_spi(Engine) import ImageIO
import NeuralNet
import TensorCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The settings of a distillation run; with the same settings and teacher, the run is the
/// same, bit for bit, for any thread count.
public struct DistillationOptions: Sendable {
    /// Optimiser steps.
    public var steps = 3000
    /// Generated images per step.
    public var batchSize = 16
    /// Side of the generated images (a multiple of 32, so that both networks' grids agree).
    public var imageSize = 128
    /// Seed of the images, the augmentation and the student's initialisation.
    public var seed: UInt64 = 0
    /// Peak AdamW learning rate (cosine decay to 1 % after a linear warm-up).
    public var learningRate: Float = 2e-3
    /// AdamW's decoupled weight decay.
    public var weightDecay: Float = 1e-4
    /// Linear warm-up steps.
    public var warmupSteps = 100
    /// Weights of the stride-4, stride-8 and stride-16 map losses.
    public var mapWeights: [Float] = [0.5, 1, 1]
    /// Weight of the pooled-embedding loss.
    public var embeddingWeight: Float = 1
    /// Generated images whose teacher embeddings give the principal axes.
    public var principalSamples = 768
    /// Random changes of each generated image before both networks see it.
    public var augmentation: Augmentation = {
        var a = Augmentation()
        a.horizontalFlip = true; a.verticalFlip = true; a.rotate90 = true
        // Crops zoom in by up to 1/0.6: more scales than the generator alone draws.
        a.minimumCropFraction = 0.6
        a.maxBrightness = 0.1; a.maxContrast = 0.15
        return a
    }()

    public init() {}
}

/// The loss of one batch, by part: each is the squared error over the target's energy.
public struct DistillationLoss: Sendable {
    /// The weighted sum that is minimised.
    public var total: Float
    /// Stride-4, stride-8 and stride-16 map losses.
    public var maps: [Float]
    /// The pooled-embedding loss.
    public var embedding: Float
}

/// Where a run stands, reported after every step.
public struct DistillationProgress: Sendable {
    /// Steps done (1-based: the step just finished).
    public var step: Int
    public var loss: DistillationLoss
    public var learningRate: Float
    /// Seconds since the run started (after the principal axes).
    public var seconds: Double
}

/// Trains a ``CompactNet`` to reproduce a teacher backbone's feature maps and pooled
/// embedding on generated images (see ``SyntheticImageGenerator``).
///
/// ```swift
/// let teacher = try BackboneStore.load(from: "lite0.vimodel")
/// let run = CompactDistillation(teacher: teacher, options: DistillationOptions())
/// run.train { print($0.step, $0.loss.total) }
/// try BackboneStore.save(run.exportedStudent(), to: "compact.vimodel")
/// ```
public final class CompactDistillation {
    public let options: DistillationOptions
    /// The network being trained (its classifier head has one output and is not trained);
    /// its outputs are the targets divided by ``targetScales``: save ``exportedStudent()``.
    public let student: CompactNet
    let teacher: FrozenBackbone
    let teacherNormalization: (mean: [Float], std: [Float])
    let generator: SyntheticImageGenerator
    /// Teacher map to student channels, `[Ct, Cs]` per tap.
    let mapProjections: [Tensor]
    /// Teacher embedding to student embedding, `[Dt, Ds]`; nil until estimated.
    private(set) var embeddingProjection: Tensor?
    /// RMS of the projected teacher targets: stride-4, -8, -16 maps and the embedding; the
    /// student learns the targets divided by these. Empty until estimated.
    public private(set) var targetScales: [Float] = []

    /// - Parameters:
    ///   - teacher: the network to copy; its maps must be no wider than the student's.
    ///   - options: the run's settings.
    public init(teacher: any Backbone, options: DistillationOptions) {
        precondition(options.imageSize % 32 == 0 && options.imageSize >= 32,
                     "CompactDistillation: image size \(options.imageSize) is not a positive multiple of 32")
        self.options = options
        var rng = Xoshiro256(seed: options.seed)
        student = CompactNet(classes: 1, using: &rng)
        self.teacher = teacher.frozen()
        teacherNormalization = teacher.inputNormalization
        generator = SyntheticImageGenerator(size: options.imageSize, seed: options.seed)
        precondition(teacher.featureChannels.count == student.featureChannels.count,
                     "CompactDistillation: teacher taps \(teacher.featureChannels), student \(student.featureChannels)")
        mapProjections = zip(teacher.featureChannels, student.featureChannels).map { teacherWidth, studentWidth in
            FixedProjection.replicating(from: teacherWidth, to: studentWidth)
        }
        if teacher.embeddingChannels <= student.embeddingChannels {
            embeddingProjection = FixedProjection.replicating(from: teacher.embeddingChannels, to: student.embeddingChannels)
        }
    }

    /// The student as it should be saved: a copy with the target scales folded back in, so
    /// its maps and embedding have the teacher's magnitudes.
    public func exportedStudent() -> CompactNet {
        prepareTargets()
        var rng = Xoshiro256(seed: 0)
        let copy = CompactNet(classes: 1, using: &rng)
        // Same architecture, same names: loading cannot fail.
        try! copy.loadState(student.stateDictionary())
        copy.scaleStageOutputs(by: targetScales)
        return copy
    }

    /// The batch of step `step`: student and teacher input, `[N, S, S, 3]` each. Images are
    /// numbered across steps so that no image repeats.
    func batch(step: Int, count: Int, salt: UInt64 = 0) -> (student: Tensor, teacher: Tensor) {
        var rng = Xoshiro256(seed: options.seed ^ 0xA5A5_0000_0000 ^ salt ^ (UInt64(step) &* 0x9E37_79B9_7F4A_7C15))
        let studentNormalization = student.inputNormalization
        var studentImages: [Tensor] = [], teacherImages: [Tensor] = []
        for k in 0..<count {
            let image = generator.image(at: Int(truncatingIfNeeded: salt) &+ step * count + k)
            // Augment in [0, 1] units, then normalise for each network.
            var x = image.tensor(channels: 3, mean: [0, 0, 0], std: [1, 1, 1]).reshaped([options.imageSize, options.imageSize, 3])
            x = options.augmentation(x, using: &rng)
            x.clamp(to: 0...1)
            studentImages.append(normalized(x, studentNormalization))
            teacherImages.append(normalized(x, teacherNormalization))
        }
        return (Tensor.stacked(studentImages), Tensor.stacked(teacherImages))
    }

    /// Runs the teacher on ``DistillationOptions/principalSamples`` generated images to fix
    /// the targets: the embedding's principal axes (when the teacher's embedding is wider
    /// than the student's) and the RMS of every target. Done once; training and the loss
    /// call it when it has not been done.
    public func prepareTargets() {
        guard targetScales.isEmpty else { return }
        var embeddings: [Tensor] = []
        var mapEnergy = [Double](repeating: 0, count: mapProjections.count), mapCount = mapEnergy
        let chunk = 16
        var done = 0
        while done < options.principalSamples {
            let count = Swift.min(chunk, options.principalSamples - done)
            // A salt far from the training indices: the targets come from images never trained on.
            let (_, teacherInput) = batch(step: done / chunk, count: count, salt: 1 << 40)
            let features = teacher.features(teacherInput)
            embeddings.append(features.embedding)
            for (index, map) in features.maps.enumerated() {
                // The projection is an isometry: the projected map has the map's energy.
                mapEnergy[index] += energy(map)
                mapCount[index] += Double(map.count / map.shape[3] * mapProjections[index].shape[1])
            }
            done += count
        }
        let all = Tensor(embeddings.flatMap(\.scalars), shape: [done, embeddings[0].shape[1]])
        if embeddingProjection == nil {
            embeddingProjection = FixedProjection.principalAxes(of: all, count: student.embeddingChannels, seed: options.seed)
        }
        let projected = matmul(all, embeddingProjection!)
        targetScales = zip(mapEnergy, mapCount).map { Float(($0 / Swift.max($1, 1)).squareRoot()) }
            + [Float((energy(projected) / Double(Swift.max(projected.count, 1))).squareRoot())]
        // A dead target (all zero) would divide by zero; it cannot be learned either way.
        targetScales = targetScales.map { $0 > 1e-6 ? $0 : 1 }
    }

    /// The distillation loss of a batch, and the variable to back-propagate.
    ///
    /// - Parameters:
    ///   - input: the student's and the teacher's normalised images.
    ///   - training: the student's batch-norm mode.
    public func loss(student input: Tensor, teacher teacherInput: Tensor, training: Bool) -> (Variable, DistillationLoss) {
        prepareTargets()
        let target = teacher.features(teacherInput)
        let output = student.forward(Variable(input), training: training)
        var total: Variable?
        var mapLosses: [Float] = []
        for (index, (map, teacherMap)) in zip(output.maps, target.maps).enumerated() {
            let s = map.shape, t = teacherMap.shape
            precondition(Array(s.dropLast()) == Array(t.dropLast()),
                         "CompactDistillation: student map \(s) and teacher map \(t) have different grids")
            let rows = s[0] * s[1] * s[2]
            let projected = matmul(teacherMap.reshaped([rows, t[3]]), mapProjections[index]).reshaped(s) / targetScales[index]
            let part = relativeError(map, target: projected)
            mapLosses.append(part.value.scalars[0])
            let weighted = options.mapWeights[index] * part
            total = total.map { $0 + weighted } ?? weighted
        }
        let projected = matmul(target.embedding, embeddingProjection!) / targetScales[3]
        let embeddingPart = relativeError(output.embedding, target: projected)
        let loss = total.map { $0 + options.embeddingWeight * embeddingPart } ?? embeddingPart
        let summary = DistillationLoss(total: loss.value.scalars[0], maps: mapLosses, embedding: embeddingPart.value.scalars[0])
        return (loss, summary)
    }

    /// Runs ``DistillationOptions/steps`` optimiser steps.
    ///
    /// - Parameters:
    ///   - progress: called after every step.
    ///   - checkpoint: called every `checkpointInterval` steps and after the last one, with
    ///     the steps done (e.g. to save the student).
    public func train(checkpointInterval: Int = 0, progress: (DistillationProgress) -> Void = { _ in },
                      checkpoint: (Int) -> Void = { _ in }) {
        prepareTargets()
        let optimizer = AdamW(parameters: student.parameters, learningRate: options.learningRate,
                              weightDecay: options.weightDecay)
        let schedule = CosineSchedule(base: options.learningRate, minimum: options.learningRate / 100,
                                      warmup: Swift.min(options.warmupSteps, options.steps / 4), total: options.steps)
        let start = monotonicClock()
        for step in 0..<options.steps {
            let (studentInput, teacherInput) = batch(step: step, count: options.batchSize)
            optimizer.learningRate = schedule.rate(at: step)
            optimizer.zeroGradients()
            let (loss, parts) = loss(student: studentInput, teacher: teacherInput, training: true)
            loss.backward()
            optimizer.step()
            progress(DistillationProgress(step: step + 1, loss: parts, learningRate: optimizer.learningRate,
                                          seconds: monotonicClock() - start))
            if (checkpointInterval > 0 && (step + 1) % checkpointInterval == 0) || step + 1 == options.steps {
                checkpoint(step + 1)
            }
        }
    }

    /// A held-out batch (images the training never draws) for measuring the loss.
    public func heldOutBatch(count: Int) -> (student: Tensor, teacher: Tensor) {
        batch(step: 0, count: count, salt: 1 << 41)
    }
}

// MARK: - Fixed projections

/// The fixed linear maps that carry a teacher's features into a student's coordinates.
public enum FixedProjection {

    /// `[from, to]` with orthonormal rows (`to >= from`): column j is unit vector `j mod from`,
    /// scaled by 1/sqrt(number of columns on that row), so the map is an isometry from the
    /// teacher's space into the student's and keeps each student channel one teacher channel.
    public static func replicating(from: Int, to: Int) -> Tensor {
        precondition(to >= from && from > 0, "FixedProjection.replicating: \(from) channels cannot be spread over \(to)")
        var values = [Float](repeating: 0, count: from * to)
        for j in 0..<to {
            let row = j % from
            let copies = to / from + (row < to % from ? 1 : 0)
            values[row * to + j] = 1 / Float(copies).squareRoot()
        }
        return Tensor(values, shape: [from, to])
    }

    /// The `count` leading principal axes of the rows of `samples` `[K, D]` (mean removed), as
    /// orthonormal columns `[D, count]`, by subspace iteration on the covariance with
    /// Gram-Schmidt re-orthonormalisation in Double.
    ///
    /// Axes beyond the sample count (or with equal variance) are not unique; any orthonormal
    /// completion is as good for a projection target, so no more iterations are spent on them.
    public static func principalAxes(of samples: Tensor, count: Int, iterations: Int = 30, seed: UInt64) -> Tensor {
        let (k, d) = (samples.shape[0], samples.shape[1])
        precondition(count <= d, "FixedProjection.principalAxes: \(count) axes of \(d)-dimensional data")
        let mean = samples.mean(alongAxis: 0).scalars
        let centred = Tensor(uninitializedShape: [k, d]) { out in
            samples.withUnsafeBufferPointer { x in for i in 0..<(k * d) { out[i] = x[i] - mean[i % d] } }
        }
        let covariance = matmul(centred, centred, transposeA: true) / Float(Swift.max(k, 1))  // [D, D]
        var rng = Xoshiro256(seed: seed ^ 0x5CA1E)
        var basis = orthonormalizedColumns(Tensor(randomNormal: [d, count], using: &rng))
        for _ in 0..<iterations {
            basis = orthonormalizedColumns(matmul(covariance, basis))
        }
        return basis
    }

    /// The columns of `[D, R]` made orthonormal in order (modified Gram-Schmidt, in Double); a
    /// column that depends on the previous ones is replaced by a fresh direction.
    public static func orthonormalizedColumns(_ matrix: Tensor) -> Tensor {
        let (d, r) = (matrix.shape[0], matrix.shape[1])
        let m = matrix.scalars
        var columns = (0..<r).map { j in (0..<d).map { Double(m[$0 * r + j]) } }
        for j in 0..<r {
            for attempt in 0..<2 {
                for i in 0..<j {
                    var dot = 0.0
                    for t in 0..<d { dot += columns[i][t] * columns[j][t] }
                    for t in 0..<d { columns[j][t] -= dot * columns[i][t] }
                }
                let norm = columns[j].reduce(0) { $0 + $1 * $1 }.squareRoot()
                if norm > 1e-9 {
                    for t in 0..<d { columns[j][t] /= norm }
                    break
                }
                // Degenerate: restart the column from a coordinate axis and orthogonalise again.
                columns[j] = (0..<d).map { $0 == (j + attempt) % d ? 1 : 0 }
            }
        }
        var out = [Float](repeating: 0, count: d * r)
        for j in 0..<r { for t in 0..<d { out[t * r + j] = Float(columns[j][t]) } }
        return Tensor(out, shape: [d, r])
    }
}

// MARK: - Helpers

/// `sum((x - target)^2) / sum(target^2)`: the part of the target not reproduced.
func relativeError(_ x: Variable, target: Tensor) -> Variable {
    Float(1 / Swift.max(energy(target), 1e-12)) * sumOfSquaredErrors(x, target: target)
}

/// The sum of squares of a tensor, in Double.
func energy(_ x: Tensor) -> Double {
    x.withUnsafeBufferPointer { t in t.reduce(0.0) { $0 + Double($1) * Double($1) } }
}

/// `(x - mean) / std` per channel of a `[H, W, C]` tensor in [0, 1] units.
func normalized(_ x: Tensor, _ normalization: (mean: [Float], std: [Float])) -> Tensor {
    let c = x.shape[2]
    let (mean, std) = normalization
    return Tensor(uninitializedShape: x.shape) { out in
        x.withUnsafeBufferPointer { v in for i in 0..<v.count { out[i] = (v[i] - mean[i % c]) / std[i % c] } }
    }
}

/// Seconds on a monotonic clock.
func monotonicClock() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) * 1e-9
}
