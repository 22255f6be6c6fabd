// Optimisers and learning-rate schedules.
import TensorCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Updates parameters from their accumulated gradients.
public protocol Optimizer: AnyObject {
    /// The parameters being optimised.
    var parameters: [Variable] { get }
    /// The step size of the next update.
    var learningRate: Float { get set }
    /// Applies one update from the current gradients (parameters without one are skipped).
    func step()
}

extension Optimizer {
    /// Clears the gradients before the next backward pass.
    public func zeroGradients() { for p in parameters { p.gradient = nil } }
}

/// Whether weight decay applies to a parameter: weights of convolutions and linear layers
/// (rank >= 2), not biases or batch-norm scales.
public func decaysByDefault(_ parameter: Variable) -> Bool { parameter.shape.count >= 2 }

/// Stochastic gradient descent with momentum and (coupled, L2) weight decay, PyTorch's rule:
/// `v = momentum * v + (g + decay * w)`, `w -= lr * v` (Nesterov: `w -= lr * (g' + momentum * v)`).
public final class SGD: Optimizer {
    public let parameters: [Variable]
    public var learningRate: Float
    public var momentum: Float
    public var weightDecay: Float
    public var nesterov: Bool
    private var velocity: [Tensor?]

    public init(parameters: [Variable], learningRate: Float, momentum: Float = 0.9, weightDecay: Float = 0,
                nesterov: Bool = false) {
        self.parameters = parameters; self.learningRate = learningRate; self.momentum = momentum
        self.weightDecay = weightDecay; self.nesterov = nesterov
        velocity = Array(repeating: nil, count: parameters.count)
    }

    public func step() {
        for (index, p) in parameters.enumerated() {
            guard var g = p.gradient else { continue }
            if weightDecay != 0 && decaysByDefault(p) { g = g + weightDecay * p.value }
            let v = velocity[index].map { momentum * $0 + g } ?? g
            velocity[index] = v
            let direction = nesterov ? g + momentum * v : v
            p.value = p.value - learningRate * direction
        }
    }
}

/// Adam with decoupled weight decay (Loshchilov & Hutter): `w -= lr * (m^ / (sqrt(v^) + eps)
/// + decay * w)`.
public final class AdamW: Optimizer {
    public let parameters: [Variable]
    public var learningRate: Float
    public var beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float
    private var first: [Tensor?], second: [Tensor?]
    private var steps = 0

    public init(parameters: [Variable], learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999,
                epsilon: Float = 1e-8, weightDecay: Float = 0.01) {
        self.parameters = parameters; self.learningRate = learningRate
        self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon; self.weightDecay = weightDecay
        first = Array(repeating: nil, count: parameters.count)
        second = first
    }

    public func step() {
        steps += 1
        let correction1 = 1 - pow(beta1, Float(steps)), correction2 = 1 - pow(beta2, Float(steps))
        for (index, p) in parameters.enumerated() {
            guard let g = p.gradient else { continue }
            var m = first[index] ?? Tensor(zeros: g.shape), v = second[index] ?? Tensor(zeros: g.shape)
            var w = p.value
            let decay = decaysByDefault(p) ? weightDecay : 0
            let (b1, b2, lr, eps) = (beta1, beta2, learningRate, epsilon)
            m.withUnsafeMutableBufferPointer { m in
                v.withUnsafeMutableBufferPointer { v in
                    w.withUnsafeMutableBufferPointer { w in
                        g.withUnsafeBufferPointer { g in
                            for i in 0..<g.count {
                                m[i] = b1 * m[i] + (1 - b1) * g[i]
                                v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
                                let update = (m[i] / correction1) / ((v[i] / correction2).squareRoot() + eps)
                                w[i] -= lr * (update + decay * w[i])
                            }
                        }
                    }
                }
            }
            first[index] = m
            second[index] = v
            p.value = w
        }
    }
}

/// Cosine learning-rate decay with linear warm-up:
/// `rate(t) = minimum + (base - minimum) * (1 + cos(pi * t' / T')) / 2` after `warmup` steps.
public struct CosineSchedule: Sendable {
    public var base: Float, minimum: Float, warmup: Int, total: Int

    public init(base: Float, minimum: Float = 0, warmup: Int = 0, total: Int) {
        self.base = base; self.minimum = minimum; self.warmup = warmup; self.total = Swift.max(total, 1)
    }

    /// The learning rate at step `t` (0-based).
    public func rate(at t: Int) -> Float {
        if t < warmup { return base * Float(t + 1) / Float(warmup) }
        let span = Swift.max(total - warmup, 1)
        let progress = Float(Swift.min(t - warmup, span)) / Float(span)
        return minimum + (base - minimum) * (1 + cos(Float.pi * progress)) / 2
    }
}
