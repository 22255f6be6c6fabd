import Anomaly
import NeuralNet
import TensorCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A procedural "part": a bright disc with a hole on a brushed background, plus noise.
/// `defect` adds a dark scratch across the disc.
func part(size: Int = 64, seed: UInt64, defect: Bool = false) -> Tensor {
    var rng = Xoshiro256(seed: seed)
    var values: [Float] = []
    let c = Float(size) / 2
    for y in 0..<size {
        for x in 0..<size {
            let (fy, fx) = (Float(y), Float(x))
            let d = ((fy - c) * (fy - c) + (fx - c) * (fx - c)).squareRoot()
            var v: Float = 0.1 * sin(fx * 0.8) + (d < Float(size) * 0.35 ? 0.6 : -0.4) - (d < Float(size) * 0.1 ? 0.8 : 0)
            if defect && abs((fy - c) - 0.5 * (fx - c)) < 1.5 && d < Float(size) * 0.33 && d > Float(size) * 0.12 { v -= 1.2 }
            v += rng.nextStandardNormal() * 0.05
            values += [v, v, v]
        }
    }
    return Tensor(values, shape: [size, size, 3])
}

func smallOptions() -> AnomalyScorerOptions {
    var options = AnomalyScorerOptions()
    options.imageSize = 64
    options.features = PatchFeatureOptions(layers: [0, 1], aggregation: 3)
    options.smoothingSigma = 1
    return options
}

let testBackbone: FrozenBackbone = BackboneArchitecture.compact.make(seed: 5).frozen()

@Test func aTrainingImageScoresAboutZero() {
    let good = (0..<3).map { part(seed: UInt64($0)) }
    var options = smallOptions()
    options.coresetFraction = 1
    let scorer = AnomalyScorer.train(goodImages: good, backbone: testBackbone, options: options)
    let own = scorer.score([good[1]]).first!.raw
    let other = scorer.score([part(seed: 42)]).first!.raw
    // Not exactly 0: distances come from |q|^2 + |b|^2 - 2 q.b, which rounds near zero.
    #expect(own < 0.02 * other, "a bank member scores \(own), a new good part \(other)")
}

@Test func defectsScoreAboveGoodPartsAndTheThresholdSeparatesThem() {
    let good = (0..<6).map { part(seed: UInt64($0)) }
    let scorer = AnomalyScorer.train(goodImages: good, backbone: testBackbone, options: smallOptions())
    let freshGood = scorer.score((100..<104).map { part(seed: UInt64($0)) }).map(\.raw)
    let defects = scorer.score((200..<204).map { part(seed: UInt64($0), defect: true) }).map(\.raw)
    #expect(freshGood.max()! < defects.min()!, "good \(freshGood) vs defects \(defects)")
    let t = scorer.calibration.threshold
    #expect(scorer.calibration.method == .heldOutGood)
    #expect(freshGood.allSatisfy { $0 <= t }, "good \(freshGood) above threshold \(t)")
    #expect(defects.allSatisfy { $0 > t }, "defects \(defects) below threshold \(t)")
    #expect(scorer.calibration.normalized(t) == 0.5)
}

@Test func scoresDoNotDependOnTheOrderOfTheTrainingImages() {
    let good = (0..<4).map { part(seed: UInt64($0)) }
    var options = smallOptions()
    options.coresetFraction = 1
    let a = AnomalyScorer.train(goodImages: good, backbone: testBackbone, options: options)
    let b = AnomalyScorer.train(goodImages: good.reversed(), backbone: testBackbone, options: options)
    let probe = [part(seed: 9, defect: true), part(seed: 10)]
    #expect(a.score(probe).map(\.raw) == b.score(probe).map(\.raw))
}

@Test func defectExamplesKeepTheThresholdBetweenTheClasses() {
    let good = (0..<5).map { part(seed: UInt64($0)) }
    let defects = (300..<303).map { part(seed: UInt64($0), defect: true) }
    let alone = AnomalyScorer.train(goodImages: good, backbone: testBackbone, options: smallOptions())
    let scorer = AnomalyScorer.train(goodImages: good, defectImages: defects, backbone: testBackbone, options: smallOptions())
    let c = scorer.calibration
    #expect(c.defectScores.count == 3)
    #expect(c.goodScores.allSatisfy { $0 < c.threshold })
    #expect(c.defectScores.allSatisfy { $0 > c.threshold })
    // Defects can only lower the good-only threshold, and only when one scored below it.
    #expect(c.threshold <= alone.calibration.threshold)
    #expect((c.method == .goodAndDefects) == (c.defectScores.min()! < alone.calibration.threshold))
    #expect(!c.defectsOverlapGood)
}

@Test func aDefectExampleThatScoresLikeAGoodPartDoesNotPullTheThresholdIntoTheGoodParts() {
    let good = (0..<5).map { part(seed: UInt64($0)) }
    let alone = AnomalyScorer.train(goodImages: good, backbone: testBackbone, options: smallOptions())
    // A "defect" example that is in fact a good part: the old F1 rule put the threshold
    // just below it, inside the good scores.
    let scorer = AnomalyScorer.train(goodImages: good, defectImages: [part(seed: 77)], backbone: testBackbone,
                                     options: smallOptions())
    let c = scorer.calibration
    let spread = ScoreNormalizer(goodScores: c.goodScores).spread
    #expect(c.threshold >= c.goodScores.max()! + ThresholdRule.standard.goodMargin * spread * 0.999)
    #expect(c.threshold <= alone.calibration.threshold)
    let fresh = scorer.score((100..<108).map { part(seed: UInt64($0)) }).map(\.raw)
    let passedAlone = fresh.filter { $0 < alone.calibration.threshold }.count
    let passed = fresh.filter { $0 < c.threshold }.count
    #expect(passed >= passedAlone - 1, "one defect example dropped the pass rate from \(passedAlone) to \(passed) of 8")
}

@Test func oneShotTrainingCalibratesFromJitteredViews() {
    let scorer = AnomalyScorer.train(goodImages: [part(seed: 1)], backbone: testBackbone, options: smallOptions())
    #expect(scorer.calibration.method == .jitteredViews)
    #expect(scorer.calibration.threshold > 0)
    #expect(scorer.calibration.goodScores.count == 8)
}

@Test func normalisedScoreIsMonotoneWithOneHalfAtTheThreshold() {
    let c = Calibration(method: .heldOutGood, threshold: 2, goodScores: [], defectScores: [], targetFalseRejectRate: 0.01)
    let raws: [Float] = [0, 0.5, 1.9, 2, 2.1, 10, 1000]
    let normalized = raws.map { c.normalized($0) }
    #expect(normalized == normalized.sorted())
    #expect(normalized[0] == 0 && normalized[3] == 0.5)
    #expect(normalized.allSatisfy { $0 >= 0 && $0 < 1 })
}

@Test func bankAugmentationsGiveTheRightNumberOfDistinctVariants() {
    let image = part(seed: 3)
    #expect(BankAugmentation.none.variantsForTesting(of: image).count == 1)
    #expect(BankAugmentation.rotate90.variantsForTesting(of: image).count == 4)
    #expect(BankAugmentation.dihedral.variantsForTesting(of: image).count == 8)
    #expect(BankAugmentation.rotate45Mirrored.variantsForTesting(of: image).count == 16)
}

@Test func mapsUpsampleAndSmoothWithoutShiftingMass() {
    // A single hot cell in the middle of a 5x5 grid stays centred after upsampling to 20x20
    // and blurring; a constant grid stays constant.
    var grid = [Float](repeating: 0, count: 25)
    grid[12] = 1
    let map = AnomalyMap.fromGrid(grid, gridWidth: 5, gridHeight: 5, width: 20, height: 20, sigma: 1.5)
    let peak = map.values.indices.max { map.values[$0] < map.values[$1] }!
    #expect([9, 10].contains(peak / 20) && [9, 10].contains(peak % 20))
    let flat = AnomalyMap.fromGrid([Float](repeating: 3, count: 16), gridWidth: 4, gridHeight: 4, width: 13, height: 7, sigma: 2)
    #expect(flat.values.allSatisfy { abs($0 - 3) < 1e-5 })
}

@Test func foldedResamplingMatchesUpsampleThenBlur() {
    // Square and non-square grids and maps, no blur, a blur wider than the grid cell, and
    // a kernel wider than the map (reflection more than once).
    var rng = Xoshiro256(seed: 12)
    for (gw, gh, w, h, sigma) in [(28, 28, 224, 224, 4.0), (5, 3, 20, 9, 1.5), (4, 4, 13, 7, 0), (2, 3, 6, 5, 3)]
        as [(Int, Int, Int, Int, Float)] {
        let grid = (0..<(gw * gh)).map { _ in Float.random(in: 0..<10, using: &rng) }
        let fast = AnomalyMap.fromGrid(grid, gridWidth: gw, gridHeight: gh, width: w, height: h, sigma: sigma)
        let plain = AnomalyMap.referenceFromGrid(grid, gridWidth: gw, gridHeight: gh, width: w, height: h, sigma: sigma)
        let error = zip(fast.values, plain.values).map { abs($0 - $1) }.max()!
        #expect(fast.width == w && fast.height == h && error < 1e-4, "\(gw)x\(gh) -> \(w)x\(h) sigma \(sigma): \(error)")
    }
}

@Test func boxesFollowTheRegionsAboveTheThreshold() {
    // Two hot blobs (one with a higher peak) and one isolated hot pixel on a 10x8 map.
    var values = [Float](repeating: 0, count: 80)
    for (x, y, v) in [(1, 1, 2.0), (2, 1, 3.0), (1, 2, 2.5), (7, 5, 5.0), (8, 5, 4.0), (8, 6, 4.5), (4, 7, 9.0)] as [(Int, Int, Float)] {
        values[y * 10 + x] = v
    }
    let map = AnomalyMap(width: 10, height: 8, values: values)
    let boxes = map.boxes(threshold: 1, minimumArea: 2)
    #expect(boxes.count == 2)
    #expect(boxes[0] == DefectBox(x: 7, y: 5, width: 2, height: 2, area: 3, peak: 5))
    #expect(boxes[1] == DefectBox(x: 1, y: 1, width: 2, height: 2, area: 3, peak: 3))
    #expect(map.boxes(threshold: 1).count == 3)
    #expect(map.boxes(threshold: 10).isEmpty)
}

@Test func resizedRowsOneAtATimeEqualTheResizedMap() {
    // Up and down in each direction, and to one row or column.
    let values: [Float] = (0..<(23 * 17)).map { (i: Int) -> Float in Float((i * 7919) % 101) / 7 - 3 }
    let map = AnomalyMap(width: 23, height: 17, values: values)
    for (w, h) in [(23, 17), (800, 600), (10, 40), (61, 5), (1, 1), (1, 30), (30, 1)] {
        let whole = map.resized(width: w, height: h).values
        var rows = [Float]()
        var seen = [Int]()
        map.forEachResizedRow(width: w, height: h) { y, row in
            seen.append(y)
            rows += Array(row)
        }
        #expect(seen == Array(0..<h))
        #expect(rows == whole, "\(w)x\(h)")
    }
}
