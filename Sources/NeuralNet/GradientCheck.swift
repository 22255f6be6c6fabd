// The finite-difference check every differentiable operation is tested with, here so that
// the test suites of every module that defines operations (NeuralNet's layers, FewShot's
// losses) use the one definition.
import TensorCore

/// Where `backward()` and the finite difference disagree.
package struct GradientMismatch: Sendable, CustomStringConvertible {
    /// Which input, and which of its elements.
    package var input: Int, position: Int
    /// The gradient from `backward()` and the central difference quotient.
    package var backward: Double, numeric: Double

    package var description: String {
        "input \(input)[\(position)]: backward \(backward), finite difference \(numeric)"
    }
}

/// Checks the gradients that `backward()` computes for `function` against central finite
/// differences, and returns the problems found (empty: all agree).
///
/// The scalar objective is `sum(f(inputs) * R)` for a fixed random `R`, accumulated in
/// Double from the Float outputs so that the difference quotient loses as little as
/// possible to rounding. For each input, `samples` elements (all when fewer) are perturbed
/// by `+-step`, and the quotient must agree with the analytic gradient within
/// `absolute + relative * max(|analytic|, |numeric|)`; the first disagreement of an input
/// is reported.
package func gradientProblems(
    inputs: [Tensor], seed: UInt64 = 1, step: Float = 1e-2, samples: Int = 24, absolute: Double = 2e-3,
    relative: Double = 1e-2, _ function: ([Variable]) -> Variable
) -> [String] {
    var rng = Xoshiro256(seed: seed)
    let variables = inputs.map { Variable($0, requiresGradient: true) }
    let output = function(variables)
    let projection = Tensor(randomNormal: output.shape, using: &rng)
    (output * Variable(projection)).sum().backward()

    func objective(_ values: [Tensor]) -> Double {
        let out = function(values.map { Variable($0) }).value
        return zip(out.scalars, projection.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }

    var problems: [String] = []
    for (index, input) in inputs.enumerated() {
        guard let analytic = variables[index].gradient else {
            problems.append("input \(index) got no gradient")
            continue
        }
        guard analytic.shape == input.shape else {
            problems.append("input \(index): gradient shape \(analytic.shape), input \(input.shape)")
            continue
        }
        let positions = input.count <= samples
            ? Array(0..<input.count)
            : (0..<samples).map { _ in Int(rng.next() % UInt64(input.count)) }
        for position in positions {
            var plus = inputs, minus = inputs
            plus[index].withUnsafeMutableBufferPointer { $0[position] += step }
            minus[index].withUnsafeMutableBufferPointer { $0[position] -= step }
            let numeric = (objective(plus) - objective(minus)) / (2 * Double(step))
            let exact = Double(analytic.scalars[position])
            if abs(exact - numeric) > absolute + relative * max(abs(exact), abs(numeric)) {
                problems.append(GradientMismatch(input: index, position: position, backward: exact, numeric: numeric).description)
                break
            }
        }
    }
    return problems
}
