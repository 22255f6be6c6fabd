import Anomaly
import NeuralNet
import TensorCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A part that always lies at the same place: a grainy plate with a dark square mark at
/// its centre. `misplaced` moves the mark 16 pixels to the right: every patch of that image
/// still looks like some good patch (the mark, plain plate), but not at its position (a
/// component fitted in the wrong place), which a per-position model sees and a bank of
/// patches hardly does.
func alignedPart(size: Int = 96, seed: UInt64, misplaced: Bool = false) -> Tensor {
    var rng = Xoshiro256(seed: seed)
    var values: [Float] = []
    let cx = size / 2 + (misplaced ? 16 : 0), cy = size / 2
    for y in 0..<size {
        for x in 0..<size {
            var v: Float = 0.2 + rng.nextStandardNormal() * 0.15
            if abs(x - cx) < 5 && abs(y - cy) < 5 { v = -0.9 + rng.nextStandardNormal() * 0.05 }
            values += [v, v, v]
        }
    }
    return Tensor(values, shape: [size, size, 3])
}

/// A part that lies anywhere: a bright disc with a hole, its centre moved by up to 16
/// pixels in x and y, on a plain grainy background; `defect` adds a dark scratch across the
/// disc. Per-position statistics smear over all the positions the disc took; a bank of
/// patches does not care where a patch lies.
func shiftedPart(size: Int = 64, seed: UInt64, defect: Bool = false) -> Tensor {
    var rng = Xoshiro256(seed: seed)
    // Steps of 8 pixels, the stride-8 grid, so that every good patch recurs on the grid.
    let cx = Float(size) / 2 + Float(8 * (Int(rng.next() % 5) - 2)), cy = Float(size) / 2 + Float(8 * (Int(rng.next() % 5) - 2))
    var values: [Float] = []
    for y in 0..<size {
        for x in 0..<size {
            let (dy, dx) = (Float(y) - cy, Float(x) - cx)
            let d = (dy * dy + dx * dx).squareRoot()
            var v: Float = d < 14 ? 0.6 : -0.4
            if d < 4 { v = -0.8 }
            if defect && abs(dy - 0.5 * dx) < 1.5 && d < 12 && d > 5 { v -= 1.2 }
            v += rng.nextStandardNormal() * 0.05
            values += [v, v, v]
        }
    }
    return Tensor(values, shape: [size, size, 3])
}

/// A bank member and a Gaussian member at the tests' small size.
func bankAndGaussian() -> [AnomalyScorerOptions] {
    var bank = smallOptions()
    bank.coresetFraction = 1
    var gaussian = smallOptions()
    gaussian.mode = .positionGaussian
    return [bank, gaussian]
}

/// Image AUROC of a scorer's raw scores on good and defective images.
func auroc(_ score: ([Tensor]) -> [Float], good: [Tensor], defects: [Tensor]) -> Double {
    let scores = score(good) + score(defects)
    return AnomalyMetrics.imageAUROC(scores: scores, labels: good.map { _ in false } + defects.map { _ in true })
}

@Test(.timeLimit(.minutes(2)))
func theEnsembleFindsWhatOnlyTheGaussianMemberSees() {
    let good = (0..<8).map { alignedPart(seed: UInt64($0)) }
    let options = bankAndGaussian().map { set -> AnomalyScorerOptions in
        var o = set
        o.imageSize = 96
        return o
    }
    let ensemble = AnomalyEnsemble.train(goodImages: good, backbone: testBackbone, options: options)
    let freshGood = (100..<112).map { alignedPart(seed: UInt64($0)) }
    let misplaced = (200..<212).map { alignedPart(seed: UInt64($0), misplaced: true) }
    let bank = auroc({ ensemble.members[0].score($0).map(\.raw) }, good: freshGood, defects: misplaced)
    let gaussian = auroc({ ensemble.members[1].score($0).map(\.raw) }, good: freshGood, defects: misplaced)
    let combined = auroc({ ensemble.score($0).map(\.raw) }, good: freshGood, defects: misplaced)
    // The data set is built so that the Gaussian must win; the combination must follow it.
    #expect(gaussian > bank + 0.1, "gaussian \(gaussian), bank \(bank)")
    #expect(combined >= gaussian - 0.05 && combined > 0.9, "combined \(combined), gaussian \(gaussian), bank \(bank)")
    let verdicts = AnomalyMetrics.balancedAccuracy(scores: ensemble.score(freshGood + misplaced).map(\.raw),
                                                   labels: freshGood.map { _ in false } + misplaced.map { _ in true },
                                                   threshold: ensemble.calibration.threshold)
    #expect(verdicts >= 0.75, "balanced accuracy of the calibrated threshold \(verdicts)")
}

@Test(.timeLimit(.minutes(2)))
func theEnsembleFindsWhatOnlyTheBankMemberSees() {
    let good = (0..<12).map { shiftedPart(seed: UInt64($0)) }
    let ensemble = AnomalyEnsemble.train(goodImages: good, backbone: testBackbone, options: bankAndGaussian())
    let freshGood = (100..<112).map { shiftedPart(seed: UInt64($0)) }
    let defects = (200..<212).map { shiftedPart(seed: UInt64($0), defect: true) }
    let bank = auroc({ ensemble.members[0].score($0).map(\.raw) }, good: freshGood, defects: defects)
    let gaussian = auroc({ ensemble.members[1].score($0).map(\.raw) }, good: freshGood, defects: defects)
    let combined = auroc({ ensemble.score($0).map(\.raw) }, good: freshGood, defects: defects)
    #expect(bank > gaussian + 0.1, "bank \(bank), gaussian \(gaussian)")
    // A member that sees nothing dilutes the mean (0.86 against the bank's 0.94 here, the
    // same as on the real development sets): the combination is far above the blind
    // member, below the seeing one. That is why the engine chooses one family when it can.
    #expect(combined > gaussian + 0.15 && combined > 0.8, "combined \(combined), bank \(bank), gaussian \(gaussian)")
}

@Test(.timeLimit(.minutes(2)), arguments: [1, 2, 4])
func aFewGoodImagesGiveAThresholdThatSeparatesAsWellAsTheScoresAllow(count: Int) {
    let good = (0..<count).map { part(seed: UInt64($0)) }
    let ensemble = AnomalyEnsemble.train(goodImages: good, backbone: testBackbone, options: bankAndGaussian())
    let freshGood = ensemble.score((100..<120).map { part(seed: UInt64($0)) }).map(\.raw)
    let defects = ensemble.score((200..<210).map { part(seed: UInt64($0), defect: true) }).map(\.raw)
    let scores = freshGood + defects, labels = freshGood.map { _ in false } + defects.map { _ in true }
    let t = ensemble.calibration.threshold
    let verdicts = AnomalyMetrics.balancedAccuracy(scores: scores, labels: labels, threshold: t)
    let best = AnomalyMetrics.bestBalancedAccuracy(scores: scores, labels: labels).accuracy
    // The rule sits at half a held-out spread above their mean: most good parts pass, and
    // the verdicts come close to what the best threshold on the same scores would give.
    let passed = Double(freshGood.filter { $0 < t }.count) / Double(freshGood.count)
    #expect(passed >= 0.5, "\(count) good image(s): \(passed * 100) % of good parts pass (threshold \(t), good \(freshGood))")
    // With one image the spread comes from jittered views of it, which here vary more than
    // new parts do: good parts pass, but so do these defects (a known limit at one shot).
    if count >= 2 {
        #expect(verdicts >= 0.8, "\(count) good images: verdicts \(verdicts), best threshold \(best) (threshold \(t))")
    }
    #expect(ensemble.calibration.normalized(t) == 0.5)
}

@Test(.timeLimit(.minutes(2)))
func oneDefectImageDoesNotDropThePassRate() {
    let good = (0..<4).map { part(seed: UInt64($0)) }
    let alone = AnomalyEnsemble.train(goodImages: good, backbone: testBackbone, options: bankAndGaussian())
    // One real defect example, and one mislabelled good part given as a defect.
    for example in [part(seed: 300, defect: true), part(seed: 301)] {
        let withDefect = AnomalyEnsemble.train(goodImages: good, defectImages: [example], backbone: testBackbone,
                                               options: bankAndGaussian())
        let c = withDefect.calibration
        let fresh = withDefect.score((100..<120).map { part(seed: UInt64($0)) }).map(\.raw)
        let passedAlone = fresh.filter { $0 < alone.calibration.threshold }.count
        let passed = fresh.filter { $0 < c.threshold }.count
        #expect(passed >= passedAlone - 1, "pass rate \(passedAlone) -> \(passed) of 20")
        // Never above the good-only threshold; below it only down to the good scores' top
        // plus the margin.
        #expect(c.threshold <= alone.calibration.threshold)
        let floor = min(alone.calibration.threshold, c.goodScores.max()! + ThresholdRule.standard.goodMargin * (c.scale ?? 1))
        #expect(c.threshold >= floor - 1e-5)
    }
}

@Test func anEnsembleOfOneIsThatScorer() {
    let good = (0..<4).map { part(seed: UInt64($0)) }
    let scorer = AnomalyScorer.train(goodImages: good, backbone: testBackbone, options: smallOptions())
    let single = AnomalyEnsemble.train(goodImages: good, backbone: testBackbone, options: [smallOptions()], scaled: false)
    let probe = [part(seed: 9, defect: true), part(seed: 10)]
    #expect(single.isSingle)
    #expect(single.calibration == scorer.calibration)
    #expect(single.score(probe).map(\.raw) == scorer.score(probe).map(\.raw))
}

@Test func normalisersFloorTheSpreadAndCenterTheGoodScores() {
    let n = ScoreNormalizer(goodScores: [10, 10, 10])
    #expect(n.mean == 10 && n.spread == 0.5)
    let m = ScoreNormalizer(goodScores: [1, 2, 3])
    #expect(m.mean == 2 && abs(m.spread - 1) < 1e-6)
    #expect(m(4) == 2)
    let c = Calibration(method: .heldOutGood, threshold: -0.5, goodScores: [], defectScores: [], targetFalseRejectRate: 0.01)
    var logistic = c
    logistic.scale = 2
    let raws: [Float] = [-10, -1, -0.5, 0, 3, 100]
    let normalized = raws.map { logistic.normalized($0) }
    #expect(normalized == normalized.sorted() && normalized[2] == 0.5)
    #expect(normalized.allSatisfy { $0 >= 0 && $0 <= 1 })
    #expect(logistic.relative(-0.5) == 1 && logistic.relative(3.5) == 1.4)
}

/// A key-like part on a grainy plate: a round dark head at the centre and a dark bar from
/// it toward the right, turned by `angle` radians about the centre. At angle 0 every part
/// lies the same way; at other angles the bar points elsewhere.
func keyPart(size: Int = 224, seed: UInt64, angle: Float) -> Tensor {
    var rng = Xoshiro256(seed: seed)
    var values: [Float] = []
    let c = Float(size) / 2, (cosA, sinA) = (cos(angle), sin(angle))
    for y in 0..<size {
        for x in 0..<size {
            // The pixel in the part's own frame (turned back by the angle).
            let (dx, dy) = (Float(x) - c, Float(y) - c)
            let (u, v) = (cosA * dx + sinA * dy, -sinA * dx + cosA * dy)
            var value: Float = 0.3 + rng.nextStandardNormal() * 0.08
            if (u * u + v * v).squareRoot() < Float(size) * 0.12 || (u > 0 && u < Float(size) * 0.42 && abs(v) < Float(size) * 0.04) {
                value = -0.8 + rng.nextStandardNormal() * 0.05
            }
            values += [value, value, value]
        }
    }
    return Tensor(values, shape: [size, size, 3])
}

@Test(.timeLimit(.minutes(3)))
func theEngineTellsPartsThatTurnFromPartsThatLieTheSameWay() {
    let size = AutomaticSettings.measuringSize
    // Four key-like parts as they always lie, and four turned by quarter turns plus a little
    // (0, 95, 185, 275 degrees): a bank with rotated copies finds the turned ones' patches.
    let aligned = (0..<4).map { keyPart(size: size, seed: UInt64($0), angle: 0) }
    let turning = [0, 95, 185, 275].enumerated().map { keyPart(size: size, seed: UInt64($0.offset), angle: Float($0.element) * .pi / 180) }
    let template = AnomalyScorerOptions()
    let (alignedSets, alignedChoice) = AutomaticSettings.choose(measuringImages: aligned, goodImageCount: 4, template: template,
                                                                backbone: testBackbone)
    let (turningSets, turningChoice) = AutomaticSettings.choose(measuringImages: turning, goodImageCount: 4, template: template,
                                                                backbone: testBackbone)
    #expect(alignedChoice.family == .aligned, "ratio \(String(describing: alignedChoice.rotationRatio))")
    #expect(turningChoice.family == .turning, "ratio \(String(describing: turningChoice.rotationRatio))")
    #expect(alignedSets.count == 1 && alignedSets[0].mode == .positionGaussian && alignedSets[0].augmentation == .mirrors)
    #expect(turningSets.count == 1 && turningSets[0].mode == .memoryBank && turningSets[0].augmentation == .rotate45Mirrored
            && turningSets[0].imageSize == 320 && turningSets[0].maximumBankSize == 4096)
    // One image cannot tell: both settings, at one input size.
    let (oneSets, oneChoice) = AutomaticSettings.choose(measuringImages: [aligned[0]], goodImageCount: 1, template: template,
                                                        backbone: testBackbone)
    #expect(oneChoice.family == .both && oneChoice.rotationRatio == nil)
    #expect(oneSets.count == 2 && Set(oneSets.map(\.imageSize)) == [size])
    // Many images: fewer copies, then none, and the bank may grow with them.
    #expect(AutomaticSettings.turning(from: template, goodImageCount: 8).augmentation == .rotate45)
    #expect(AutomaticSettings.turning(from: template, goodImageCount: 300).augmentation == BankAugmentation.none)
    #expect(AutomaticSettings.turning(from: template, goodImageCount: 300).maximumBankSize == 16_384)
    #expect(AutomaticSettings.aligned(from: template, goodImageCount: 300).augmentation == BankAugmentation.none)
}
