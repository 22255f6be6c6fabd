import NeuralNet
import TensorCore
import Testing

/// Records an issue for each disagreement between `backward()` and central finite
/// differences (see `gradientProblems` in NeuralNet for the objective and tolerances).
func checkGradients(
    _ name: String, inputs: [Tensor], seed: UInt64 = 1, step: Float = 1e-2, samples: Int = 24,
    absolute: Double = 2e-3, relative: Double = 1e-2,
    _ function: ([Variable]) -> Variable, sourceLocation: SourceLocation = #_sourceLocation
) {
    for problem in gradientProblems(inputs: inputs, seed: seed, step: step, samples: samples, absolute: absolute,
                                    relative: relative, function) {
        Issue.record("\(name): \(problem)", sourceLocation: sourceLocation)
    }
}

/// Random values kept at least `margin` away from every point in `kinks`, so that a
/// finite-difference step never crosses a point where the function is not smooth.
func awayFromKinks(_ shape: [Int], kinks: [Float], margin: Float = 0.05, scale: Float = 3, seed: UInt64) -> Tensor {
    var rng = Xoshiro256(seed: seed)
    let values = (0..<shape.reduce(1, *)).map { _ -> Float in
        while true {
            let v = rng.nextStandardNormal() * scale
            if kinks.allSatisfy({ abs(v - $0) > margin }) { return v }
        }
    }
    return Tensor(values, shape: shape)
}

func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
    var rng = Xoshiro256(seed: seed)
    return Tensor(randomNormal: shape, standardDeviation: scale, using: &rng)
}
