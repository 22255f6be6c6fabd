import Anomaly
import Foundation
import NeuralNet
import TensorCore
import Testing

/// The scorer in Gaussian mode, on the aligned generated parts of `ScorerTests` (every
/// part has its disc at the same place, as on a fixture).
@Suite("Gaussian-mode scorer")
struct GaussianScorerTests {
    static func options(channels: Int = 0) -> AnomalyScorerOptions {
        var options = smallOptions()
        options.mode = .positionGaussian
        options.gaussianChannels = channels
        return options
    }

    @Test("a fresh good part scores low, a defect higher, and the threshold lies between", arguments: [0, 24])
    func goodLowDefectHigh(channels: Int) {
        let good = (0..<10).map { part(seed: UInt64($0)) }
        let scorer = AnomalyScorer.train(goodImages: good, backbone: testBackbone, options: Self.options(channels: channels))
        #expect(scorer.memory == nil)
        let gaussian = scorer.gaussian!
        #expect(gaussian.sampleCount == 10)
        #expect(gaussian.channels.count == (channels == 0 ? gaussian.featureDimension : channels))
        let freshGood = scorer.score((100..<104).map { part(seed: UInt64($0)) }).map(\.raw)
        let defects = scorer.score((200..<204).map { part(seed: UInt64($0), defect: true) }).map(\.raw)
        #expect(freshGood.max()! < defects.min()!, "good \(freshGood) vs defects \(defects)")
        #expect(scorer.calibration.method == .heldOutGood)
        #expect(scorer.calibration.goodScores.count == 10)
        let t = scorer.calibration.threshold
        #expect(freshGood.allSatisfy { $0 <= t }, "good \(freshGood) above threshold \(t)")
        #expect(defects.allSatisfy { $0 > t }, "defects \(defects) below threshold \(t)")
        // The defect's map peaks on the scratch (which crosses the disc's ring), not elsewhere.
        let map = scorer.score([part(seed: 200, defect: true)])[0].map
        let peak = map.values.indices.max { map.values[$0] < map.values[$1] }!
        let (y, x) = (Float(peak / map.width) - 32, Float(peak % map.width) - 32)
        #expect(abs(y - 0.5 * x) < 8, "map peak at (\(x), \(y)) relative to the centre")
    }

    @Test("held-out calibration scores come from Gaussians refitted without the fold")
    func heldOutScoresAreNotTrainingScores() {
        let good = (0..<6).map { part(seed: UInt64($0)) }
        let scorer = AnomalyScorer.train(goodImages: good, backbone: testBackbone, options: Self.options())
        // Scored by the full model, a training image is closer than when held out.
        let own = scorer.score(good).map(\.raw)
        let held = scorer.calibration.goodScores
        // Folds of 6 images in 5 folds: fold 0 holds images 0 and 5, in that order.
        let order = [0, 5, 1, 2, 3, 4]
        for (k, index) in order.enumerated() {
            #expect(own[index] < held[k], "image \(index): own \(own[index]), held out \(held[k])")
        }
    }

    @Test("scores do not depend on the order of the training images")
    func orderInvariance() {
        let good = (0..<6).map { part(seed: UInt64($0)) }
        var options = Self.options(channels: 20)
        options.augmentation = .mirrors
        let a = AnomalyScorer.train(goodImages: good, backbone: testBackbone, options: options)
        let b = AnomalyScorer.train(goodImages: [good[3], good[5], good[0], good[4], good[1], good[2]],
                                    backbone: testBackbone, options: options)
        #expect(a.gaussian!.channels == b.gaussian!.channels)
        #expect(a.gaussian!.sampleCount == 24)
        let probe = [part(seed: 9, defect: true), part(seed: 10)]
        let (x, y) = (a.score(probe), b.score(probe))
        // The fit sums in Double in image order, then rounds to Float: a different order may
        // change the last bit of a mean, never more.
        for (p, q) in zip(x, y) {
            #expect(abs(p.raw - q.raw) <= 1e-4 * max(1, abs(p.raw)), "\(p.raw) vs \(q.raw)")
            for (u, v) in zip(p.map.values, q.map.values) where abs(u - v) > 1e-4 * max(1, abs(u)) {
                Issue.record("maps differ: \(u) vs \(v)")
                break
            }
        }
    }

    @Test("the channel subset is seeded, ascending, without repeats, and all channels at 0")
    func channelSubset() {
        let a = GaussianMemory.channelSubset(count: 50, of: 152, seed: 3)
        #expect(a.count == 50 && Set(a).count == 50 && a == a.sorted() && a.allSatisfy { (0..<152).contains($0) })
        #expect(GaussianMemory.channelSubset(count: 50, of: 152, seed: 3) == a)
        #expect(GaussianMemory.channelSubset(count: 50, of: 152, seed: 4) != a)
        #expect(GaussianMemory.channelSubset(count: 0, of: 7, seed: 3) == Array(0..<7))
        #expect(GaussianMemory.channelSubset(count: 9, of: 7, seed: 3) == Array(0..<7))
    }

    @Test("Gaussians rebuilt from their stored arrays score identically; bad arrays are refused")
    func storedArrays() {
        var rng = Xoshiro256(seed: 8)
        let samples = (0..<12).map { _ in Tensor(randomNormal: [6, 5], using: &rng) }
        let fitted = PositionGaussian(features: samples)
        let rebuilt = PositionGaussian(positions: 6, dimension: 5, means: fitted.meanValues,
                                       inverseFactors: fitted.inverseFactorValues)!
        let probe = Tensor(randomNormal: [6, 5], using: &rng)
        #expect(rebuilt.mahalanobis(probe) == fitted.mahalanobis(probe))
        #expect(PositionGaussian(positions: 6, dimension: 5, means: fitted.meanValues,
                                 inverseFactors: Array(fitted.inverseFactorValues.dropLast())) == nil)
        #expect(PositionGaussian(positions: 5, dimension: 6, means: fitted.meanValues,
                                 inverseFactors: fitted.inverseFactorValues) == nil)
        var nan = fitted.meanValues
        nan[3] = .nan
        #expect(PositionGaussian(positions: 6, dimension: 5, means: nan, inverseFactors: fitted.inverseFactorValues) == nil)
    }
}

@Test func topMeanIsTheMeanOfTheLargestValuesAndTheMaximumAtZero() {
    var rng = Xoshiro256(seed: 12)
    let values = (0..<400).map { _ in rng.nextStandardNormal() }
    let map = AnomalyMap(width: 20, height: 20, values: values)
    #expect(map.topMean(fraction: 0) == values.max()!)
    let sorted = values.sorted(by: >)
    let want = sorted.prefix(4).reduce(0, +) / 4
    #expect(abs(map.topMean(fraction: 0.01) - want) < 1e-5)
    // Never fewer than one value, never more than all of them.
    #expect(map.topMean(fraction: 1e-9) == values.max()!)
    let all = values.reduce(0.0) { $0 + Double($1) } / 400
    #expect(abs(Double(map.topMean(fraction: 1)) - all) < 1e-5)
    // Ties, ascending and descending runs (the selection's awkward inputs), odd sizes.
    for n in [2, 3, 17, 1003] {
        for pattern in 0..<4 {
            let v: [Float] = (0..<n).map { i in
                switch pattern {
                case 0: return 1
                case 1: return Float(i)
                case 2: return Float(n - i)
                default: return Float(i % 3)
                }
            }
            let m = AnomalyMap(width: n, height: 1, values: v)
            for fraction in [0.01, 0.1, 0.5, 0.99] {
                let k = min(n, max(1, Int((Double(n) * fraction).rounded())))
                let want = v.sorted(by: >).prefix(k).reduce(0.0) { $0 + Double($1) } / Double(k)
                #expect(abs(Double(m.topMean(fraction: fraction)) - want) < 1e-4 * max(1, want), "n \(n), pattern \(pattern), fraction \(fraction)")
            }
        }
    }
}

@Test func theImageScoreFollowsTheTopFractionOption() {
    let good = (0..<3).map { part(seed: UInt64($0)) }
    var options = smallOptions()
    options.topFraction = 0.05
    let scorer = AnomalyScorer.train(goodImages: good, backbone: testBackbone, options: options)
    let result = scorer.score([part(seed: 50, defect: true)])[0]
    #expect(result.raw == result.map.topMean(fraction: 0.05))
    #expect(result.raw < result.map.maximum)
}

@Test func mirrorsGiveFourDistinctVariantsThatKeepTheShape() {
    let image = part(size: 32, seed: 3)
    let variants = BankAugmentation.mirrors.variantsForTesting(of: image)
    #expect(variants.count == 4)
    #expect(Set(variants.map(\.scalars)).count == 4)
    #expect(variants.allSatisfy { $0.shape == image.shape })
    #expect(variants[0].scalars == image.scalars)
    // Mirroring both ways is the half turn.
    #expect(variants[3].scalars == rotated90(image, times: 2).scalars)
}

@Test func optionsWrittenBeforeTheModesExistedDecodeToTheOldBehaviour() throws {
    // The keys a model file of layout 1 holds: no mode, no Gaussian or score options.
    let old = """
        {"imageSize":320,"features":{"layers":[1,2],"aggregation":1},"augmentation":"rotate45Mirrored",
         "coresetFraction":0.1,"maximumBankSize":16384,"coresetThreshold":16384,"smoothingSigma":4,"seed":2}
        """
    let options = try JSONDecoder().decode(AnomalyScorerOptions.self, from: Data(old.utf8))
    var expected = AnomalyScorerOptions()
    expected.imageSize = 320
    expected.features = PatchFeatureOptions(layers: [1, 2], aggregation: 1)
    expected.augmentation = .rotate45Mirrored
    expected.seed = 2
    #expect(options == expected)
    #expect(options.mode == .memoryBank && options.topFraction == 0)
    var gaussian = expected
    gaussian.mode = .positionGaussian
    gaussian.gaussianChannels = 40
    gaussian.topFraction = 0.01
    #expect(try JSONDecoder().decode(AnomalyScorerOptions.self, from: JSONEncoder().encode(gaussian)) == gaussian)
}
