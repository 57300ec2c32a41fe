// Single-pass optimizer steps for XLA:CPU, called through jax.ffi.
//
// XLA:CPU compiles one per-leaf Adam step into three loop fusions (one per
// output), each re-reading the gradient and the moments. These handlers read
// params, grads and state once and write the new params and state in place
// (the Python side aliases every state input to its output), for any number
// of leaves in one call. Per element they do the same floating-point
// operations, in the same order and with the same fused multiply-adds, as the
// code XLA:CPU emits for the reference path, its rsqrt included
// (jaxopt_notes/fused.py documents the one exception: Adam on several leaves).
// The per-element rules are in step_rules.h; this file splits the leaves into
// chunks, runs a rule over them on XLA's CPU thread pool, and defines the FFI
// handlers.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "step_rules.h"
#include "xla/ffi/api/ffi.h"

namespace {

// --- chunking and threads ---------------------------------------------------

// Three variants of every loop, chosen at run time: AVX-512 and AVX2, both
// with FMA (XLA:CPU then contracts multiply-adds too, and a fused
// multiply-add rounds the same at any vector width), and a baseline one.
template <class Rule>
__attribute__((target("avx512f,avx512vl,avx2,fma,prefer-vector-width=512"))) void RangeAvx512(
    const float* hp, bool flag, const LeafT<typename ElemOf<Rule>::type>& l, int64_t b, int64_t e) {
  Rule::template Run<true>(hp, flag, l, b, e);
}

template <class Rule>
__attribute__((target("avx2,fma"))) void RangeFma(const float* hp, bool flag,
                                                   const LeafT<typename ElemOf<Rule>::type>& l,
                                                   int64_t b, int64_t e) {
  Rule::template Run<true>(hp, flag, l, b, e);
}

template <class Rule>
void RangePlain(const float* hp, bool flag, const LeafT<typename ElemOf<Rule>::type>& l, int64_t b,
                int64_t e) {
  Rule::template Run<false>(hp, flag, l, b, e);
}



// XLA:CPU runs with denormals flushed to zero (FTZ and DAZ); so must we.
class FlushDenormals {
 public:
  FlushDenormals() {
#if defined(JON_X86)
    saved_ = _mm_getcsr();
    _mm_setcsr(saved_ | 0x8040);
#endif
  }
  ~FlushDenormals() {
#if defined(JON_X86)
    _mm_setcsr(saved_);
#endif
  }

 private:
  unsigned saved_ = 0;
};

// Work shared by the calling thread and the pool's helpers. Helpers may start
// after the call is over; they then find no chunk left and only touch this.
template <class T>
struct Work {
  std::vector<LeafT<T>> leaves;
  std::vector<Chunk> chunks;
  std::vector<float> hp;
  bool flag = false;
  void (*range)(const float*, bool, const LeafT<T>&, int64_t, int64_t) = nullptr;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};

  void Drain() {
    FlushDenormals ftz;
    const int64_t n = static_cast<int64_t>(chunks.size());
    for (int64_t c = next.fetch_add(1); c < n; c = next.fetch_add(1)) {
      const Chunk& k = chunks[c];
      range(hp.data(), flag, leaves[k.leaf], k.begin, k.end);
      done.fetch_add(1, std::memory_order_release);
    }
  }
};

constexpr int64_t kChunk = int64_t{1} << 16;     // elements per task
constexpr int64_t kParallel = int64_t{1} << 18;  // below this, one thread

template <class Rule>
ffi::Error Step(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> hp, ffi::RemainingArgs args,
                ffi::RemainingRets rets, bool flag, bool flat_state) {
  constexpr int kS = Rule::kState;
  using T = typename ElemOf<Rule>::type;
  constexpr ffi::DataType kDtype = kDtypeOf<T>;
  // Per-leaf state: params, grads and each state array per leaf, in and out.
  // Flat state: params and grads per leaf, each state array one vector laid
  // out as the leaves concatenated (wrappers.flatten's layout).
  const size_t nargs = args.size(), nrets = rets.size();
  const bool ok = flat_state ? nargs >= kS && (nargs - kS) % 2 == 0 && nrets == (nargs - kS) / 2 + kS
                             : nargs % (2 + kS) == 0 && nrets * (2 + kS) == nargs * (1 + kS);
  if (!ok) return ffi::Error::InvalidArgument("jaxopt_notes step: wrong number of buffers");
  const int64_t L = static_cast<int64_t>(flat_state ? (nargs - kS) / 2 : nargs / (2 + kS));
  auto work = std::make_shared<Work<T>>();
  work->hp.assign(hp.typed_data(), hp.typed_data() + hp.element_count());
  work->flag = flag;
  work->range = HostHasAvx512() ? &RangeAvx512<Rule>
                : HostHasFma()   ? &RangeFma<Rule>
                                 : &RangePlain<Rule>;
  work->leaves.resize(L);
  // State buffer s of leaf i (in and out) and its offset into that buffer.
  auto state_buffers = [&](int s, int64_t i) {
    return flat_state ? std::make_pair(args.get<ffi::AnyBuffer>(2 * L + s), rets.get<ffi::AnyBuffer>(L + s))
                      : std::make_pair(args.get<ffi::AnyBuffer>((2 + s) * L + i),
                                       rets.get<ffi::AnyBuffer>((1 + s) * L + i));
  };
  int64_t total = 0;
  for (int64_t i = 0; i < L; ++i) {
    LeafT<T>& leaf = work->leaves[i];
    auto p = args.get<ffi::AnyBuffer>(i);
    auto g = args.get<ffi::AnyBuffer>(L + i);
    auto po = rets.get<ffi::AnyBuffer>(i);
    if (!p || !g || !po) return ffi::Error::InvalidArgument("jaxopt_notes step: bad buffer");
    leaf.n = static_cast<int64_t>(p->element_count());
    if (p->element_type() != kDtype || g->element_type() != kDtype ||
        static_cast<int64_t>(g->element_count()) != leaf.n) {
      return ffi::Error::InvalidArgument("jaxopt_notes step: leaves of one dtype and size expected");
    }
    leaf.p_in = static_cast<const T*>(p->untyped_data());
    leaf.g = static_cast<const T*>(g->untyped_data());
    leaf.p_out = static_cast<T*>((*po)->untyped_data());
    const int64_t offset = flat_state ? total : 0;
    for (int s = 0; s < kS; ++s) {
      auto [si, so] = state_buffers(s, i);
      const int64_t have = si ? static_cast<int64_t>(si->element_count()) : -1;
      if (!si || !so || si->element_type() != kDtype ||
          (flat_state ? have < offset + leaf.n : have != leaf.n)) {
        return ffi::Error::InvalidArgument("jaxopt_notes step: bad state buffer");
      }
      leaf.s_in[s] = static_cast<const T*>(si->untyped_data()) + offset;
      leaf.s_out[s] = static_cast<T*>((*so)->untyped_data()) + offset;
    }
    // Small chunks, claimed dynamically: measured faster than one contiguous
    // piece per thread, which leaves a thread idle when the other is slower.
    for (int64_t b = 0; b < leaf.n; b += kChunk) {
      work->chunks.push_back(Chunk{static_cast<int32_t>(i), b, std::min(leaf.n, b + kChunk)});
    }
    total += leaf.n;
  }
  for (int s = 0; flat_state && s < kS; ++s) {
    if (static_cast<int64_t>(args.get<ffi::AnyBuffer>(2 * L + s)->element_count()) != total) {
      return ffi::Error::InvalidArgument("jaxopt_notes step: flat state must hold every leaf");
    }
  }
  const int64_t n_chunks = static_cast<int64_t>(work->chunks.size());
  if (total >= kParallel && n_chunks > 1) {
    const int64_t helpers = std::min<int64_t>(pool.num_threads(), n_chunks) - 1;
    for (int64_t h = 0; h < helpers; ++h) {
      pool.Schedule([work] { work->Drain(); });
    }
  }
  work->Drain();
  // Chunks claimed by helpers may still be running.
  while (work->done.load(std::memory_order_acquire) < n_chunks) {
    std::this_thread::yield();
  }
  return ffi::Error::Success();
}

}  // namespace

#define JON_DEFINE(NAME, RULE)                                          \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(NAME, Step<RULE>,                       \
                                ffi::Ffi::Bind()                        \
                                    .Ctx<ffi::ThreadPool>()             \
                                    .Arg<ffi::Buffer<ffi::F32>>()       \
                                    .RemainingArgs()                    \
                                    .RemainingRets()                    \
                                    .Attr<bool>("flag")                 \
                                    .Attr<bool>("flat_state"));

JON_DEFINE(JonAdamStep, Adam)
JON_DEFINE(JonMomentumStep, Momentum)
JON_DEFINE(JonSgdStep, Sgd)
JON_DEFINE(JonRmsStep, Rms)
JON_DEFINE(JonRssStep, Rss)
JON_DEFINE(JonAdadeltaStep, Adadelta)
JON_DEFINE(JonAdadeltaBf16Step, AdadeltaBf16)
JON_DEFINE(JonStreamStep, Stream)

extern "C" int JonHostHasFma() { return HostHasFma() ? 1 : 0; }

// rsqrt of n floats as the fast loops compute it, 8 at a time then one by one:
// what the load-time check compares with jax.lax.rsqrt.
#if defined(JON_X86)
extern "C" __attribute__((target("avx2,fma"))) int JonRsqrtProbe(const float* x, float* out,
                                                                 int64_t n, int steps) {
  if (!HostHasFma()) return 0;
  FlushDenormals ftz;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    _mm256_storeu_ps(out + i, steps == 1 ? XlaRsqrt8<1>(v) : XlaRsqrt8<2>(v));
  }
  for (; i < n; ++i) out[i] = steps == 1 ? XlaRsqrt1<1>(x[i]) : XlaRsqrt1<2>(x[i]);
  return 1;
}
#else
extern "C" int JonRsqrtProbe(const float*, float*, int64_t, int) { return 0; }
#endif
