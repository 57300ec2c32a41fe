// The per-element rules of the fused optimizer steps (step_kernels.cc runs
// them over leaves and threads): for each optimizer, the float operations
// XLA:CPU emits for its reference path, in the same order and with the same
// fused multiply-adds, its rsqrt and bfloat16 roundings included.

#ifndef JAXOPT_NOTES_KERNELS_STEP_RULES_H_
#define JAXOPT_NOTES_KERNELS_STEP_RULES_H_

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define JON_X86 1
#endif

#include "xla/ffi/api/ffi.h"

// The loops below mark their pointers __restrict although, with donation, an
// output is the very buffer of its input. Each element is read before it is
// written and no element reads another's, so the vectorised loops stay exact;
// without __restrict (and `ivdep`, which says the same to GCC's vectoriser)
// the compiler would fall back to scalar code whenever input and output
// overlap, i.e. always.

namespace ffi = xla::ffi;

namespace {

// a * b + c as XLA:CPU computes it: one rounding where the host has FMA
// (XLA contracts a multiply feeding an add), two where it does not.
template <bool kFma>
__attribute__((always_inline)) inline float madd(float a, float b, float c) {
  if constexpr (kFma) {
    return __builtin_fmaf(a, b, c);
  } else {
    return a * b + c;
  }
}

bool HostHasFma() {
#if defined(JON_X86)
  static const bool has = __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2");
  return has;
#else
  return false;
#endif
}

// AVX-512 with VL and DQ (the root loops also split vectors into halves).
bool HostHasAvx512() {
#if defined(JON_X86)
  static const bool has = HostHasFma() && __builtin_cpu_supports("avx512f") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return has;
#else
  return false;
#endif
}

// Up to four state arrays per leaf, plus params and grads.
constexpr int kMaxState = 4;

// One leaf's buffers; T is the storage type (float, or uint16_t holding
// bfloat16 bits).
template <class T>
struct LeafT {
  const T* p_in;
  const T* g;
  T* p_out;
  const T* s_in[kMaxState];
  T* s_out[kMaxState];
  int64_t n;
};
using Leaf = LeafT<float>;

// A rule's storage type: float unless it declares `using Elem = ...`.
template <class R, class = void>
struct ElemOf {
  using type = float;
};
template <class R>
struct ElemOf<R, std::void_t<typename R::Elem>> {
  using type = typename R::Elem;
};
template <class T>
constexpr ffi::DataType kDtypeOf = ffi::DataType::F32;
template <>
constexpr ffi::DataType kDtypeOf<uint16_t> = ffi::DataType::BF16;

struct Chunk {
  int32_t leaf;
  int64_t begin, end;
};

// Software prefetch kPrefetch floats (2 KiB) ahead on every input stream, one
// cache line per call. Measured on the 2-core test machine: the hardware
// prefetchers alone leave a step with a root and a division about 10% below
// the bandwidth of a plain streaming loop; this closes most of that gap. Steps
// without a root (momentum) measured no better with it and go without.
constexpr int64_t kPrefetch = 512;
template <class... P>
__attribute__((always_inline)) inline void Prefetch(const P*... ptrs) {
  (__builtin_prefetch(ptrs + kPrefetch, 0, 3), ...);
}

// --- the per-element rules --------------------------------------------------
// `hp` holds the step's scalars, computed on the JAX side exactly as the
// reference path computes them (bias corrections, the signed step size).

struct Adam {  // hp: 1-b1, b1, 1-b2, b2, bc1, bc2, eps_root, eps, wd, -lr
  static constexpr int kState = 2;
  template <bool kFma, bool kWd>
  __attribute__((always_inline)) static inline void Loop(const float* hp, const Leaf& l,
                                                         int64_t b, int64_t e) {
    const float c1 = hp[0], b1 = hp[1], c2 = hp[2], b2 = hp[3], eps_root = hp[6],
                eps = hp[7], lam = hp[8], lr = hp[9];
    // XLA rewrites a division by the broadcast bias correction into a
    // multiplication by its reciprocal; so do we, for the same roundings.
    const float r1 = 1.0f / hp[4], r2 = 1.0f / hp[5];
    const float* __restrict g = l.g;
    const float* __restrict p0 = l.p_in;
    const float* __restrict m0 = l.s_in[0];
    const float* __restrict v0 = l.s_in[1];
    float* __restrict p1 = l.p_out;
    float* __restrict m1 = l.s_out[0];
    float* __restrict v1 = l.s_out[1];
    auto body = [&](int64_t i) __attribute__((always_inline)) {
      const float gi = g[i], pi = p0[i];
      const float m = madd<kFma>(c1, gi, b1 * m0[i]);
      const float v = madd<kFma>(c2, gi * gi, b2 * v0[i]);
      float u = (m * r1) / (std::sqrt(madd<kFma>(v, r2, eps_root)) + eps);
      if constexpr (kWd) u = madd<kFma>(lam, pi, u);
      p1[i] = madd<kFma>(lr, u, pi);
      m1[i] = m;
      v1[i] = v;
    };
    int64_t i = b;
    for (; i + 16 <= e; i += 16) {
      Prefetch(g + i, p0 + i, m0 + i, v0 + i);
#pragma GCC ivdep
      for (int64_t k = i; k < i + 16; ++k) body(k);
    }
    for (; i < e; ++i) body(i);
  }
  template <bool kFma>
  __attribute__((always_inline)) static inline void Run(const float* hp, bool wd, const Leaf& l,
                                                        int64_t b, int64_t e) {
    if (wd) {
      Loop<kFma, true>(hp, l, b, e);
    } else {
      Loop<kFma, false>(hp, l, b, e);
    }
  }
};

struct Momentum {  // hp: decay, -lr (attr: nesterov)
  static constexpr int kState = 1;
  template <bool kFma>
  __attribute__((always_inline)) static inline void Run(const float* hp, bool nesterov, const Leaf& l, int64_t b, int64_t e) {
    const float d = hp[0], lr = hp[1];
    const float* __restrict g = l.g;
    const float* __restrict p0 = l.p_in;
    const float* __restrict t0 = l.s_in[0];
    float* __restrict p1 = l.p_out;
    float* __restrict t1 = l.s_out[0];
#pragma GCC ivdep
    for (int64_t i = b; i < e; ++i) {
      const float gi = g[i];
      const float t = madd<kFma>(d, t0[i], gi);
      const float u = nesterov ? madd<kFma>(d, t, gi) : t;
      p1[i] = madd<kFma>(lr, u, p0[i]);
      t1[i] = t;
    }
  }
};

struct Sgd {  // hp: -lr
  static constexpr int kState = 0;
  template <bool kFma>
  __attribute__((always_inline)) static inline void Run(const float* hp, bool, const Leaf& l, int64_t b, int64_t e) {
    const float lr = hp[0];
    const float* __restrict g = l.g;
    const float* __restrict p0 = l.p_in;
    float* __restrict p1 = l.p_out;
#pragma GCC ivdep
    for (int64_t i = b; i < e; ++i) p1[i] = madd<kFma>(lr, g[i], p0[i]);
  }
};

#if defined(JON_X86)
// XLA:CPU's float32 rsqrt on x86 with AVX: the hardware estimate, refined by
// `steps` Newton steps (h = x*y*y - 1, y -= y*h/2, multiply-adds fused), the
// raw estimate kept where x < FLT_MIN or x is +inf. The Python side checks at
// load time which `steps` reproduces jax.lax.rsqrt bit for bit on this
// machine (0: none does; then the loops below use the exact 1 / sqrt).
template <int kSteps>
__attribute__((target("avx2,fma"), always_inline)) inline __m256 XlaRsqrt8(__m256 x) {
  const __m256 y0 = _mm256_rsqrt_ps(x);
  __m256 y = y0;
  for (int k = 0; k < kSteps; ++k) {
    const __m256 r2 = _mm256_mul_ps(x, y);
    const __m256 half_r = _mm256_mul_ps(y, _mm256_set1_ps(-0.5f));
    const __m256 h = _mm256_fmadd_ps(r2, y, _mm256_set1_ps(-1.0f));
    y = _mm256_fmadd_ps(half_r, h, y);
  }
  const __m256 keep = _mm256_or_ps(
      _mm256_cmp_ps(x, _mm256_set1_ps(1.17549435e-38f), _CMP_LT_OQ),
      _mm256_cmp_ps(x, _mm256_set1_ps(__builtin_inff()), _CMP_EQ_OQ));
  return _mm256_blendv_ps(y, y0, keep);
}

// One element the same way (XLA's loop remainders use the scalar estimate).
template <int kSteps>
__attribute__((target("avx2,fma"), always_inline)) inline float XlaRsqrt1(float x) {
  return _mm256_cvtss_f32(XlaRsqrt8<kSteps>(_mm256_set1_ps(x)));
}

// Adds the leaf's RMSProp (kAdagrad false) or AdaGrad (true) step with XLA's rsqrt.
template <bool kAdagrad, int kSteps>
__attribute__((target("avx2,fma"))) void RootLoop(const float* hp, const Leaf& l, int64_t b,
                                                  int64_t e) {
  const float c = kAdagrad ? 1.0f : hp[0], d = kAdagrad ? 1.0f : hp[1];
  const float eps = kAdagrad ? hp[0] : hp[2], lr = kAdagrad ? hp[1] : hp[3];
  int64_t i = b;
  for (; i + 8 <= e; i += 8) {
    const __m256 g = _mm256_loadu_ps(l.g + i);
    const __m256 s0 = _mm256_loadu_ps(l.s_in[0] + i);
    __m256 s, r;
    if constexpr (kAdagrad) {
      s = _mm256_fmadd_ps(g, g, s0);
      r = _mm256_and_ps(XlaRsqrt8<kSteps>(_mm256_add_ps(s, _mm256_set1_ps(eps))),
                        _mm256_cmp_ps(s, _mm256_setzero_ps(), _CMP_GT_OQ));
    } else {
      s = _mm256_fmadd_ps(_mm256_set1_ps(c), _mm256_mul_ps(g, g),
                          _mm256_mul_ps(_mm256_set1_ps(d), s0));
      r = XlaRsqrt8<kSteps>(_mm256_add_ps(s, _mm256_set1_ps(eps)));
    }
    const __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(lr), _mm256_mul_ps(r, g),
                                     _mm256_loadu_ps(l.p_in + i));
    _mm256_storeu_ps(l.p_out + i, p);
    _mm256_storeu_ps(l.s_out[0] + i, s);
  }
  for (; i < e; ++i) {
    const float g = l.g[i];
    float s, r;
    if constexpr (kAdagrad) {
      s = __builtin_fmaf(g, g, l.s_in[0][i]);
      r = s > 0.0f ? XlaRsqrt1<kSteps>(s + eps) : 0.0f;
    } else {
      s = __builtin_fmaf(c, g * g, d * l.s_in[0][i]);
      r = XlaRsqrt1<kSteps>(s + eps);
    }
    l.p_out[i] = __builtin_fmaf(lr, r * g, l.p_in[i]);
    l.s_out[0][i] = s;
  }
}

// The same with AVX-512: the estimate still comes from the 256-bit rsqrtps
// (AVX-512's own rsqrt14 has other bits), the rest 16 lanes at a time.
#define JON_AVX512 "avx512f,avx512vl,avx512dq,avx2,fma"
template <int kSteps>
__attribute__((target(JON_AVX512), always_inline)) inline __m512 XlaRsqrt16(__m512 x) {
  const __m512 y0 = _mm512_insertf32x8(
      _mm512_castps256_ps512(_mm256_rsqrt_ps(_mm512_castps512_ps256(x))),
      _mm256_rsqrt_ps(_mm512_extractf32x8_ps(x, 1)), 1);
  __m512 y = y0;
  for (int k = 0; k < kSteps; ++k) {
    const __m512 r2 = _mm512_mul_ps(x, y);
    const __m512 half_r = _mm512_mul_ps(y, _mm512_set1_ps(-0.5f));
    const __m512 h = _mm512_fmadd_ps(r2, y, _mm512_set1_ps(-1.0f));
    y = _mm512_fmadd_ps(half_r, h, y);
  }
  const __mmask16 keep =
      _mm512_cmp_ps_mask(x, _mm512_set1_ps(1.17549435e-38f), _CMP_LT_OQ) |
      _mm512_cmp_ps_mask(x, _mm512_set1_ps(__builtin_inff()), _CMP_EQ_OQ);
  return _mm512_mask_blend_ps(keep, y, y0);
}

template <bool kAdagrad, int kSteps>
__attribute__((target(JON_AVX512))) void RootLoop512(const float* hp, const Leaf& l, int64_t b,
                                                     int64_t e) {
  const float c = kAdagrad ? 1.0f : hp[0], d = kAdagrad ? 1.0f : hp[1];
  const float eps = kAdagrad ? hp[0] : hp[2], lr = kAdagrad ? hp[1] : hp[3];
  int64_t i = b;
  for (; i + 16 <= e; i += 16) {
    Prefetch(l.g + i, l.s_in[0] + i, l.p_in + i);
    const __m512 g = _mm512_loadu_ps(l.g + i);
    const __m512 s0 = _mm512_loadu_ps(l.s_in[0] + i);
    __m512 s, r;
    if constexpr (kAdagrad) {
      s = _mm512_fmadd_ps(g, g, s0);
      r = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(s, _mm512_setzero_ps(), _CMP_GT_OQ),
                              XlaRsqrt16<kSteps>(_mm512_add_ps(s, _mm512_set1_ps(eps))));
    } else {
      s = _mm512_fmadd_ps(_mm512_set1_ps(c), _mm512_mul_ps(g, g),
                          _mm512_mul_ps(_mm512_set1_ps(d), s0));
      r = XlaRsqrt16<kSteps>(_mm512_add_ps(s, _mm512_set1_ps(eps)));
    }
    _mm512_storeu_ps(l.p_out + i, _mm512_fmadd_ps(_mm512_set1_ps(lr), _mm512_mul_ps(r, g),
                                                  _mm512_loadu_ps(l.p_in + i)));
    _mm512_storeu_ps(l.s_out[0] + i, s);
  }
  if (i < e) RootLoop<kAdagrad, kSteps>(hp, l, i, e);
}

// Adadelta as XLA:CPU compiles optax's formula: sqrt(a) / sqrt(b) becomes
// sqrt(a) * rsqrt(b); the new e_x fuses the multiply-add on its *second*
// product; and a constant step of -1 (no learning rate) folds into -g.
template <bool kWd, bool kNegOne, int kSteps>
__attribute__((target("avx2,fma"))) void AdadeltaLoop(const float* hp, const Leaf& l, int64_t b,
                                                      int64_t e) {
  const float c = hp[0], rho = hp[1], eps = hp[2], lr = hp[3], lam = hp[4];
  const __m256 vc = _mm256_set1_ps(c), vrho = _mm256_set1_ps(rho), veps = _mm256_set1_ps(eps);
  int64_t i = b;
  for (; i + 8 <= e; i += 8) {
    const __m256 p = _mm256_loadu_ps(l.p_in + i);
    __m256 g = _mm256_loadu_ps(l.g + i);
    if constexpr (kWd) g = _mm256_fmadd_ps(_mm256_set1_ps(lam), p, g);
    const __m256 ex0 = _mm256_loadu_ps(l.s_in[1] + i);
    const __m256 eg = _mm256_fmadd_ps(vc, _mm256_mul_ps(g, g),
                                      _mm256_mul_ps(vrho, _mm256_loadu_ps(l.s_in[0] + i)));
    const __m256 sr = _mm256_mul_ps(_mm256_sqrt_ps(_mm256_add_ps(ex0, veps)),
                                    XlaRsqrt8<kSteps>(_mm256_add_ps(eg, veps)));
    const __m256 u = _mm256_mul_ps(sr, g);
    _mm256_storeu_ps(l.s_out[0] + i, eg);
    _mm256_storeu_ps(l.s_out[1] + i, _mm256_fmadd_ps(ex0, vrho, _mm256_mul_ps(_mm256_mul_ps(u, u), vc)));
    if constexpr (kNegOne) {
      _mm256_storeu_ps(l.p_out + i, _mm256_fnmadd_ps(sr, g, p));
    } else {
      _mm256_storeu_ps(l.p_out + i, _mm256_fmadd_ps(_mm256_set1_ps(lr), u, p));
    }
  }
  for (; i < e; ++i) {
    const float p = l.p_in[i];
    float g = l.g[i];
    if constexpr (kWd) g = __builtin_fmaf(lam, p, g);
    const float ex0 = l.s_in[1][i];
    const float eg = __builtin_fmaf(c, g * g, rho * l.s_in[0][i]);
    const float sr = std::sqrt(ex0 + eps) * XlaRsqrt1<kSteps>(eg + eps);
    const float u = sr * g;
    l.s_out[0][i] = eg;
    l.s_out[1][i] = __builtin_fmaf(ex0, rho, (u * u) * c);
    l.p_out[i] = kNegOne ? __builtin_fmaf(sr, -g, p) : __builtin_fmaf(lr, u, p);
  }
}

void AdadeltaFast(const float* hp, bool wd, const Leaf& l, int64_t b, int64_t e, int steps) {
  const bool neg_one = hp[6] != 0.0f;
  if (steps == 1) {
    if (wd) {
      neg_one ? AdadeltaLoop<true, true, 1>(hp, l, b, e) : AdadeltaLoop<true, false, 1>(hp, l, b, e);
    } else {
      neg_one ? AdadeltaLoop<false, true, 1>(hp, l, b, e) : AdadeltaLoop<false, false, 1>(hp, l, b, e);
    }
  } else {
    if (wd) {
      neg_one ? AdadeltaLoop<true, true, 2>(hp, l, b, e) : AdadeltaLoop<true, false, 2>(hp, l, b, e);
    } else {
      neg_one ? AdadeltaLoop<false, true, 2>(hp, l, b, e) : AdadeltaLoop<false, false, 2>(hp, l, b, e);
    }
  }
}

template <bool kAdagrad>
void RootStepFast(const float* hp, const Leaf& l, int64_t b, int64_t e, int steps) {
  const bool wide = HostHasAvx512();
  if (steps == 1) {
    wide ? RootLoop512<kAdagrad, 1>(hp, l, b, e) : RootLoop<kAdagrad, 1>(hp, l, b, e);
  } else {
    wide ? RootLoop512<kAdagrad, 2>(hp, l, b, e) : RootLoop<kAdagrad, 2>(hp, l, b, e);
  }
}
#endif  // JON_X86

struct Rms {  // hp: 1-decay, decay, eps, -lr, rsqrt steps
  static constexpr int kState = 1;
  template <bool kFma>
  __attribute__((always_inline)) static inline void Run(const float* hp, bool, const Leaf& l, int64_t b, int64_t e) {
    const int steps = static_cast<int>(hp[4]);
#if defined(JON_X86)
    if (kFma && steps > 0) return RootStepFast<false>(hp, l, b, e, steps);
#endif
    const float c = hp[0], d = hp[1], eps = hp[2], lr = hp[3];
    const float* __restrict g = l.g;
    const float* __restrict p0 = l.p_in;
    const float* __restrict n0 = l.s_in[0];
    float* __restrict p1 = l.p_out;
    float* __restrict n1 = l.s_out[0];
#pragma GCC ivdep
    for (int64_t i = b; i < e; ++i) {
      const float gi = g[i];
      const float nu = madd<kFma>(c, gi * gi, d * n0[i]);
      const float u = (1.0f / std::sqrt(nu + eps)) * gi;
      p1[i] = madd<kFma>(lr, u, p0[i]);
      n1[i] = nu;
    }
  }
};

struct Rss {  // AdaGrad; hp: eps, -lr, rsqrt steps
  static constexpr int kState = 1;
  template <bool kFma>
  __attribute__((always_inline)) static inline void Run(const float* hp, bool, const Leaf& l, int64_t b, int64_t e) {
    const int steps = static_cast<int>(hp[2]);
#if defined(JON_X86)
    if (kFma && steps > 0) return RootStepFast<true>(hp, l, b, e, steps);
#endif
    const float eps = hp[0], lr = hp[1];
    const float* __restrict g = l.g;
    const float* __restrict p0 = l.p_in;
    const float* __restrict s0 = l.s_in[0];
    float* __restrict p1 = l.p_out;
    float* __restrict s1 = l.s_out[0];
#pragma GCC ivdep
    for (int64_t i = b; i < e; ++i) {
      const float gi = g[i];
      const float s = madd<kFma>(gi, gi, s0[i]);
      // Both sides computed, then selected: a branch would stop vectorisation.
      const float root = 1.0f / std::sqrt(s + eps);
      const float inv = s > 0.0f ? root : 0.0f;
      p1[i] = madd<kFma>(lr, inv * gi, p0[i]);
      s1[i] = s;
    }
  }
};

// Only with XLA's rsqrt reproduced (fused_status().rsqrt_steps > 0, which
// needs x86 with FMA): the Python side never selects this kernel otherwise.
struct Adadelta {  // hp: 1-rho, rho, eps, signed step, wd, rsqrt steps, step is -1
  static constexpr int kState = 2;
  template <bool kFma>
  __attribute__((always_inline)) static inline void Run(const float* hp, bool wd, const Leaf& l,
                                                        int64_t b, int64_t e) {
#if defined(JON_X86)
    if (kFma) AdadeltaFast(hp, wd, l, b, e, static_cast<int>(hp[5]));
#endif
  }
};

// bfloat16 as XLA:CPU computes it: every operation widens its operands to
// float32 (exactly), computes, and rounds the result back to bfloat16 (to
// nearest, ties to even), with no fused multiply-adds across the roundings.
__attribute__((always_inline)) inline float Widen(uint16_t h) {
  return __builtin_bit_cast(float, static_cast<uint32_t>(h) << 16);
}
// The float32 value of the bfloat16 nearest to x (a NaN stays a quiet NaN).
__attribute__((always_inline)) inline float Round(float x) {
  uint32_t b = __builtin_bit_cast(uint32_t, x);
  b = (b & 0x7fffffffu) > 0x7f800000u ? b | 0x00400000u : b + 0x7fffu + ((b >> 16) & 1u);
  return __builtin_bit_cast(float, b & 0xffff0000u);
}
__attribute__((always_inline)) inline uint16_t Bits(float rounded) {
  return static_cast<uint16_t>(__builtin_bit_cast(uint32_t, rounded) >> 16);
}

// Adadelta with bfloat16 params, grads and state (optax's formula as XLA
// compiles it there: sqrt(a) / sqrt(b), a division, every step rounded).
struct AdadeltaBf16 {  // hp: 1-rho, rho, eps, signed step, wd; each a bfloat16 value
  static constexpr int kState = 2;
  using Elem = uint16_t;
  template <bool kFma>
  __attribute__((always_inline)) static inline void Run(const float* hp, bool wd,
                                                        const LeafT<uint16_t>& l, int64_t b,
                                                        int64_t e) {
    wd ? Loop<true>(hp, l, b, e) : Loop<false>(hp, l, b, e);
  }
  template <bool kWd>
  __attribute__((always_inline)) static inline void Loop(const float* hp, const LeafT<uint16_t>& l,
                                                         int64_t b, int64_t e) {
    const float c = hp[0], rho = hp[1], eps = hp[2], step = hp[3], lam = hp[4];
    const bool neg = step == -1.0f;
    const uint16_t* __restrict g0 = l.g;
    const uint16_t* __restrict p0 = l.p_in;
    const uint16_t* __restrict eg0 = l.s_in[0];
    const uint16_t* __restrict ex0 = l.s_in[1];
    uint16_t* __restrict p1 = l.p_out;
    uint16_t* __restrict eg1 = l.s_out[0];
    uint16_t* __restrict ex1 = l.s_out[1];
#pragma GCC ivdep
    for (int64_t i = b; i < e; ++i) {
      const float p = Widen(p0[i]), ex = Widen(ex0[i]);
      float g = Widen(g0[i]);
      if constexpr (kWd) g = Round(g + Round(p * lam));
      const float eg = Round(Round(Round(g * g) * c) + Round(Widen(eg0[i]) * rho));
      const float ratio = Round(Round(std::sqrt(Round(ex + eps))) / Round(std::sqrt(Round(eg + eps))));
      const float u = Round(ratio * g);
      eg1[i] = Bits(eg);
      ex1[i] = Bits(Round(Round(Round(u * u) * c) + Round(ex * rho)));
      // XLA turns u * -1 into -u, which flips a NaN's sign where a multiply keeps it.
      p1[i] = Bits(Round(p + Round(neg ? -u : u * step)));
    }
  }
};

// In-place streaming reference for the benchmark: reads four arrays, writes
// three (Adam's traffic) with one multiply-add each, no other arithmetic.
struct Stream {  // hp: a
  static constexpr int kState = 2;
  template <bool kFma>
  __attribute__((always_inline)) static inline void Run(const float* hp, bool, const Leaf& l, int64_t b, int64_t e) {
    const float a = hp[0];
    const float* __restrict g = l.g;
#pragma GCC ivdep
    for (int64_t i = b; i < e; ++i) {
      const float gi = g[i];
      l.p_out[i] = madd<kFma>(a, gi, l.p_in[i]);
      l.s_out[0][i] = madd<kFma>(a, gi, l.s_in[0][i]);
      l.s_out[1][i] = madd<kFma>(a, gi, l.s_in[1][i]);
    }
  }
};

}  // namespace

#endif  // JAXOPT_NOTES_KERNELS_STEP_RULES_H_
