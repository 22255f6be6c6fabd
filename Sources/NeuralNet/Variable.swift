// Reverse-mode automatic differentiation.
//
// Every operation on `Variable`s computes its value at once and, when any input needs a
// gradient, records a closure that maps the gradient of its output to the gradients of
// its inputs. `backward()` walks the recorded graph from the loss in reverse topological
// order and accumulates the gradients of the leaves (the parameters).
import TensorCore

/// A tensor in a differentiable computation: a leaf (input or parameter) or the result of
/// an operation on other variables.
///
/// ```swift
/// let w = Variable(Tensor(randomNormal: [3, 2], using: &rng), requiresGradient: true)
/// let loss = (matmul(x, w)).sum()
/// loss.backward()
/// print(w.gradient!)      // d loss / d w, shape [3, 2]
/// ```
///
/// Not thread-safe: build and differentiate a graph on one thread (the kernels inside
/// each operation use the thread pool).
public final class Variable {
    /// The value computed in the forward pass.
    public var value: Tensor
    /// The accumulated gradient of the last `backward()` calls (leaves only); nil until set.
    public var gradient: Tensor?
    /// Whether gradients flow to this variable.
    public let requiresGradient: Bool
    let parents: [Variable]
    let pullback: ((Tensor) -> [Tensor?])?

    /// A leaf variable.
    /// - Parameters:
    ///   - value: its value.
    ///   - requiresGradient: true for trainable parameters.
    public init(_ value: Tensor, requiresGradient: Bool = false) {
        self.value = value
        self.requiresGradient = requiresGradient
        parents = []
        pullback = nil
    }

    /// The result of an operation. `pullback` maps the output gradient to one gradient per
    /// parent (nil where a parent needs none); it is kept only if a parent needs gradients.
    init(_ value: Tensor, parents: [Variable], pullback: @escaping (Tensor) -> [Tensor?]) {
        self.value = value
        let needed = parents.contains { $0.requiresGradient }
        self.requiresGradient = needed
        self.parents = needed ? parents : []
        self.pullback = needed ? pullback : nil
    }

    /// The value's shape.
    public var shape: [Int] { value.shape }

    /// Back-propagates from this variable: accumulates `d self / d leaf` (times `seed`)
    /// into the `gradient` of every leaf that requires one.
    ///
    /// - Parameter seed: the gradient of some outer objective with respect to this
    ///   variable; defaults to ones (for a scalar loss, the loss itself).
    public func backward(seed: Tensor? = nil) {
        guard requiresGradient else { return }
        // Reverse topological order by an iterative depth-first search (graphs of deep
        // networks would overflow a recursive one's stack).
        var order: [Variable] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Variable, Bool)] = [(self, false)]
        while let (node, expanded) = stack.popLast() {
            if expanded { order.append(node); continue }
            if !visited.insert(ObjectIdentifier(node)).inserted { continue }
            stack.append((node, true))
            for parent in node.parents where parent.requiresGradient && !visited.contains(ObjectIdentifier(parent)) {
                stack.append((parent, false))
            }
        }
        var gradients: [ObjectIdentifier: Tensor] = [ObjectIdentifier(self): seed ?? Tensor(ones: value.shape)]
        for node in order.reversed() {
            guard let upstream = gradients.removeValue(forKey: ObjectIdentifier(node)) else { continue }
            guard let pullback = node.pullback else {
                node.gradient = node.gradient.map { $0 + upstream } ?? upstream
                continue
            }
            let inputs = pullback(upstream)
            for (parent, gradient) in zip(node.parents, inputs) {
                guard parent.requiresGradient, let gradient else { continue }
                precondition(gradient.shape == parent.value.shape,
                             "backward: gradient \(gradient.shape) for a value of shape \(parent.value.shape)")
                let key = ObjectIdentifier(parent)
                gradients[key] = gradients[key].map { $0 + gradient } ?? gradient
            }
        }
    }
}
