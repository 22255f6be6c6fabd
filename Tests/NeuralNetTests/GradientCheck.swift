import NeuralNet
import TensorCore
import Testing

/// Checks the gradients that `backward()` computes for `function` against central finite
/// differences.
///
/// The scalar objective is `sum(f(inputs) * R)` for a fixed random `R`, accumulated in
/// Double from the Float outputs so that the difference quotient loses as little as
/// possible to rounding. For each input, `samples` elements (all when fewer) are perturbed
/// by `+-step`, and the quotient must agree with the analytic gradient within
/// `absolute + relative * max(|analytic|, |numeric|)`.
func checkGradients(
    _ name: String, inputs: [Tensor], seed: UInt64 = 1, step: Float = 1e-2, samples: Int = 24,
    absolute: Double = 2e-3, relative: Double = 1e-2,
    _ function: ([Variable]) -> Variable, sourceLocation: SourceLocation = #_sourceLocation
) {
    var rng = Xoshiro256(seed: seed)
    let variables = inputs.map { Variable($0, requiresGradient: true) }
    let output = function(variables)
    let projection = Tensor(randomNormal: output.shape, using: &rng)
    (output * Variable(projection)).sum().backward()

    func objective(_ values: [Tensor]) -> Double {
        let out = function(values.map { Variable($0) }).value
        return zip(out.scalars, projection.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }

    for (index, input) in inputs.enumerated() {
        guard let analytic = variables[index].gradient else {
            Issue.record("\(name): input \(index) got no gradient", sourceLocation: sourceLocation)
            continue
        }
        #expect(analytic.shape == input.shape, "\(name): gradient shape", sourceLocation: sourceLocation)
        let positions = input.count <= samples
            ? Array(0..<input.count)
            : (0..<samples).map { _ in Int(rng.next() % UInt64(input.count)) }
        var worst = 0.0
        for position in positions {
            var plus = inputs, minus = inputs
            plus[index].withUnsafeMutableBufferPointer { $0[position] += step }
            minus[index].withUnsafeMutableBufferPointer { $0[position] -= step }
            let numeric = (objective(plus) - objective(minus)) / (2 * Double(step))
            let exact = Double(analytic.scalars[position])
            let error = abs(exact - numeric)
            let allowed = absolute + relative * max(abs(exact), abs(numeric))
            worst = max(worst, error / allowed)
            if error > allowed {
                Issue.record("\(name): input \(index)[\(position)]: backward \(exact), finite difference \(numeric)",
                             sourceLocation: sourceLocation)
                return
            }
        }
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
