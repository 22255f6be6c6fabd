// Compiler intrinsics that Swift does not reach, as inline functions.
#ifndef VINSPECT_INTRINSICS_H
#define VINSPECT_INTRINSICS_H

/// Asks the CPU to bring the cache line holding `p` towards the core (L2 on this
/// machine's AMD cores) ahead of use: a hint, never a fault, whatever `p` points to.
static inline void vinspect_prefetch(const void *p) { __builtin_prefetch(p, 0, 2); }

#endif
