// The convolution stacks of a supernet excitation edge, all at once, forward and backward.
//
// An excitation edge applies up to six stacks of one-channel convolutions to one small map
// h (B, 1, H, W) (1-D signals are H = 1): op o is L_o convolutions (kh × kw, odd sides, zero
// padding, same size, optional bias), with a ReLU between consecutive ones or not:
//
//   a_0 = h,   a_l = conv_l(f(a_(l−1))) for l = 1..L_o,   logits[o] = a_(L_o)
//
// with f = ReLU (if the op has one between its convolutions, l > 1) or the identity. One call
// computes the logits of every op (ops, B, H, W), keeping the intermediate maps for the
// backward pass, which returns the gradients of h, of every kernel (one flat vector, in the
// order of the forward's weights) and of every bias.
//
// Run op by op through torch, an edge costs a dozen oneDNN convolutions forward and backward
// plus the glue around them; oneDNN is not made for one-channel maps (its backward pass
// measured ~5–10 ms for a 7×7 filter over 64 maps of 32×32) and these stacks are a few hundred
// thousand multiply-adds. Work items are samples (at::parallel_for over B, torch's intra-op
// threads); the parameter gradients are accumulated per sample in float64 and summed at the
// end, in a fixed order (deterministic).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FC_MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define FC_MULTIVERSION
#endif
// Inlined into each target clone of its caller, so every clone gets its own vector code.
#define FC_INLINE __attribute__((always_inline)) inline

// The loops over one map. `padded` is a map with kw − 1 zero columns around it
// ((kw − 1) / 2 either side, rows of W + kw − 1), so the column loops need no bounds checks;
// rows out of range are skipped. With kw a compile-time constant (1, 3, 5, 7) the tap loop is
// unrolled and the column loop vectorises.

// o[i][j] += Σ_u Σ_v wk[u][v] · in[i + u − kh/2][j + v − kw/2]
template <typename T, int KW>
FC_INLINE void corr_t(const T* __restrict padded, const T* __restrict wk, T* __restrict o,
                      int64_t H, int64_t W, int64_t kh, int64_t kw_runtime) {
  const int64_t kw = KW > 0 ? KW : kw_runtime, Wp = W + kw - 1, ph = kh / 2;
  for (int64_t u = 0; u < kh; ++u) {
    const int64_t du = u - ph;
    const int64_t i0 = std::max<int64_t>(0, -du), i1 = std::min(H, H - du);
    const T* __restrict wr = wk + u * kw;
    for (int64_t i = i0; i < i1; ++i) {
      const T* __restrict x = padded + (i + du) * Wp;
      T* __restrict y = o + i * W;
      for (int64_t j = 0; j < W; ++j) {
        T acc = 0;
        for (int64_t v = 0; v < kw; ++v) acc += wr[v] * x[j + v];
        y[j] += acc;
      }
    }
  }
}

// gw[u][v] += Σ_i Σ_j g[i][j] · in[i + u − kh/2][j + v − kw/2]; acc holds kw · W values.
template <typename T, int KW>
FC_INLINE void corr_weight_grad_t(const T* __restrict g, const T* __restrict padded,
                                  double* __restrict gw, T* __restrict acc, int64_t H, int64_t W,
                                  int64_t kh, int64_t kw_runtime) {
  const int64_t kw = KW > 0 ? KW : kw_runtime, Wp = W + kw - 1, ph = kh / 2;
  for (int64_t u = 0; u < kh; ++u) {
    const int64_t du = u - ph;
    const int64_t i0 = std::max<int64_t>(0, -du), i1 = std::min(H, H - du);
    std::fill(acc, acc + kw * W, T(0));
    for (int64_t i = i0; i < i1; ++i) {
      const T* __restrict x = padded + (i + du) * Wp;
      const T* __restrict a = g + i * W;
      for (int64_t v = 0; v < kw; ++v) {
        T* __restrict s = acc + v * W;
        for (int64_t j = 0; j < W; ++j) s[j] += a[j] * x[j + v];
      }
    }
    for (int64_t v = 0; v < kw; ++v) {
      double total = 0.0;
      for (int64_t j = 0; j < W; ++j) total += static_cast<double>(acc[v * W + j]);
      gw[u * kw + v] += total;
    }
  }
}

#define FC_DISPATCH_KW(fn, ...)                  \
  switch (kw) {                                  \
    case 1: return fn<T, 1>(__VA_ARGS__, kw);    \
    case 3: return fn<T, 3>(__VA_ARGS__, kw);    \
    case 5: return fn<T, 5>(__VA_ARGS__, kw);    \
    case 7: return fn<T, 7>(__VA_ARGS__, kw);    \
    default: return fn<T, 0>(__VA_ARGS__, kw);   \
  }

template <typename T>
FC_INLINE void corr_any(const T* padded, const T* wk, T* o, int64_t H, int64_t W, int64_t kh,
                        int64_t kw) {
  FC_DISPATCH_KW(corr_t, padded, wk, o, H, W, kh)
}
template <typename T>
FC_INLINE void corr_weight_grad_any(const T* g, const T* padded, double* gw, T* acc,
                                    int64_t H, int64_t W, int64_t kh, int64_t kw) {
  FC_DISPATCH_KW(corr_weight_grad_t, g, padded, gw, acc, H, W, kh)
}
#undef FC_DISPATCH_KW

FC_MULTIVERSION void corr(const float* p, const float* w, float* o, int64_t H, int64_t W,
                          int64_t kh, int64_t kw) {
  corr_any(p, w, o, H, W, kh, kw);
}
FC_MULTIVERSION void corr(const double* p, const double* w, double* o, int64_t H, int64_t W,
                          int64_t kh, int64_t kw) {
  corr_any(p, w, o, H, W, kh, kw);
}
FC_MULTIVERSION void corr_weight_grad(const float* g, const float* p, double* gw, float* acc,
                                      int64_t H, int64_t W, int64_t kh, int64_t kw) {
  corr_weight_grad_any(g, p, gw, acc, H, W, kh, kw);
}
FC_MULTIVERSION void corr_weight_grad(const double* g, const double* p, double* gw, double* acc,
                                      int64_t H, int64_t W, int64_t kh, int64_t kw) {
  corr_weight_grad_any(g, p, gw, acc, H, W, kh, kw);
}

// dst = src (H, W) with (kw − 1) / 2 zero columns either side, through a ReLU if asked.
template <typename T>
void pad_columns(const T* src, T* dst, int64_t H, int64_t W, int64_t kw, bool relu) {
  const int64_t pw = kw / 2, Wp = W + kw - 1;
  for (int64_t i = 0; i < H; ++i) {
    T* row = dst + i * Wp;
    std::fill(row, row + pw, T(0));
    std::fill(row + pw + W, row + Wp, T(0));
    const T* s = src + i * W;
    if (relu) {
      for (int64_t j = 0; j < W; ++j) row[pw + j] = s[j] > T(0) ? s[j] : T(0);
    } else {
      std::copy(s, s + W, row + pw);
    }
  }
}

struct Conv {
  int64_t kh, kw, w_offset, b_index;  // b_index: position in the bias vector, or -1
};

struct Stacks {
  std::vector<Conv> convs;             // op by op, layer by layer
  std::vector<int64_t> first, layers;  // per op: its first conv, its number of convs
  std::vector<char> relu;              // per op: ReLU between its convs
  std::vector<int64_t> slot;           // per conv: its output's intermediate slot, or -1
  int64_t n_weights = 0, n_biases = 0, n_slots = 0;
};

Stacks make_stacks(const std::vector<int64_t>& kh, const std::vector<int64_t>& kw,
                   const std::vector<bool>& has_bias, const std::vector<int64_t>& layers,
                   const std::vector<bool>& relu) {
  TORCH_CHECK(kh.size() == kw.size() && kh.size() == has_bias.size(),
              "conv_stacks: kh, kw and has_bias need one entry per convolution");
  TORCH_CHECK(layers.size() == relu.size() && !layers.empty(),
              "conv_stacks: layers and relu need one entry per op");
  Stacks S;
  int64_t c = 0;
  for (size_t o = 0; o < layers.size(); ++o) {
    TORCH_CHECK(layers[o] >= 1, "conv_stacks: op ", o, " has no convolution");
    S.first.push_back(c);
    S.layers.push_back(layers[o]);
    S.relu.push_back(relu[o]);
    for (int64_t l = 0; l < layers[o]; ++l, ++c) {
      TORCH_CHECK(c < static_cast<int64_t>(kh.size()), "conv_stacks: more layers than kernels");
      TORCH_CHECK(kh[c] % 2 == 1 && kw[c] % 2 == 1, "conv_stacks: kernel sides must be odd, got ",
                  kh[c], "x", kw[c]);
      S.convs.push_back({kh[c], kw[c], S.n_weights, has_bias[c] ? S.n_biases : -1});
      S.n_weights += kh[c] * kw[c];
      if (has_bias[c]) ++S.n_biases;
      S.slot.push_back(l + 1 < layers[o] ? S.n_slots++ : -1);
    }
  }
  TORCH_CHECK(c == static_cast<int64_t>(kh.size()), "conv_stacks: ", kh.size(),
              " kernels for ", c, " layers");
  return S;
}

template <typename scalar_t>
void forward_impl(const scalar_t* h, const scalar_t* w, const scalar_t* bias, scalar_t* logits,
                  scalar_t* inter, int64_t B, int64_t H, int64_t W, const Stacks& S,
                  int64_t max_kw) {
  const int64_t HW = H * W, ops = static_cast<int64_t>(S.layers.size());
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<scalar_t> pad(static_cast<size_t>(H * (W + max_kw - 1)));
    for (int64_t b = b0; b < b1; ++b) {
      for (int64_t o = 0; o < ops; ++o) {
        const scalar_t* prev = h + b * HW;
        for (int64_t l = 0; l < S.layers[o]; ++l) {
          const int64_t c = S.first[o] + l;
          const Conv& k = S.convs[c];
          pad_columns(prev, pad.data(), H, W, k.kw, l > 0 && S.relu[o]);
          scalar_t* out = S.slot[c] >= 0 ? inter + (S.slot[c] * B + b) * HW
                                         : logits + (o * B + b) * HW;
          std::fill(out, out + HW, k.b_index >= 0 ? bias[k.b_index] : scalar_t(0));
          corr(pad.data(), w + k.w_offset, out, H, W, k.kh, k.kw);
          prev = out;
        }
      }
    }
  });
}

template <typename scalar_t>
void backward_impl(const scalar_t* h, const scalar_t* w, const scalar_t* inter,
                   const scalar_t* grad_logits, scalar_t* grad_h, double* gw_per_sample,
                   double* gb_per_sample, int64_t B, int64_t H, int64_t W, const Stacks& S,
                   int64_t max_kw, int64_t max_taps) {
  const int64_t HW = H * W, ops = static_cast<int64_t>(S.layers.size());
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<scalar_t> pad(static_cast<size_t>(H * (W + max_kw - 1)));
    std::vector<scalar_t> g(static_cast<size_t>(HW)), acc(static_cast<size_t>(HW));
    std::vector<scalar_t> lanes(static_cast<size_t>(max_kw * W)), flipped(max_taps);
    for (int64_t b = b0; b < b1; ++b) {
      double* gw = gw_per_sample ? gw_per_sample + b * S.n_weights : nullptr;
      double* gb = gb_per_sample ? gb_per_sample + b * S.n_biases : nullptr;
      if (gw) std::fill(gw, gw + S.n_weights, 0.0);
      if (gb) std::fill(gb, gb + S.n_biases, 0.0);
      if (grad_h) std::fill(grad_h + b * HW, grad_h + (b + 1) * HW, scalar_t(0));
      for (int64_t o = 0; o < ops; ++o) {
        const scalar_t* go = grad_logits + (o * B + b) * HW;
        std::copy(go, go + HW, g.begin());
        for (int64_t l = S.layers[o] - 1; l >= 0; --l) {
          const int64_t c = S.first[o] + l;
          const Conv& k = S.convs[c];
          const scalar_t* prev = l == 0 ? h + b * HW : inter + (S.slot[c - 1] * B + b) * HW;
          const bool relu = l > 0 && S.relu[o];
          if (gb && k.b_index >= 0) {
            double s = 0.0;
            for (int64_t q = 0; q < HW; ++q) s += static_cast<double>(g[q]);
            gb[k.b_index] += s;
          }
          if (gw) {
            pad_columns(prev, pad.data(), H, W, k.kw, relu);
            corr_weight_grad(g.data(), pad.data(), gw + k.w_offset, lanes.data(), H, W, k.kh,
                             k.kw);
          }
          if (l == 0 && !grad_h) break;
          // the input gradient is the correlation of g with the flipped kernel
          const int64_t taps = k.kh * k.kw;
          std::reverse_copy(w + k.w_offset, w + k.w_offset + taps, flipped.begin());
          pad_columns(g.data(), pad.data(), H, W, k.kw, false);
          std::fill(acc.begin(), acc.end(), scalar_t(0));
          corr(pad.data(), flipped.data(), acc.data(), H, W, k.kh, k.kw);
          if (l == 0) {
            scalar_t* gh = grad_h + b * HW;
            for (int64_t q = 0; q < HW; ++q) gh[q] += acc[q];
          } else if (relu) {
            for (int64_t q = 0; q < HW; ++q) g[q] = prev[q] > scalar_t(0) ? acc[q] : scalar_t(0);
          } else {
            std::copy(acc.begin(), acc.end(), g.begin());
          }
        }
      }
    }
  });
}

int64_t max_kw(const Stacks& S) {
  int64_t m = 1;
  for (const Conv& k : S.convs) m = std::max(m, k.kw);
  return m;
}

int64_t max_taps(const Stacks& S) {
  int64_t m = 1;
  for (const Conv& k : S.convs) m = std::max(m, k.kh * k.kw);
  return m;
}

void check_input(const at::Tensor& h, const at::Tensor& w, const at::Tensor& bias,
                 const Stacks& S) {
  TORCH_CHECK(h.device().is_cpu() && h.dim() == 4 && h.size(1) == 1 && h.is_contiguous() &&
                  (h.scalar_type() == at::kFloat || h.scalar_type() == at::kDouble),
              "conv_stacks: h must be a contiguous (B, 1, H, W) float32/float64 CPU tensor");
  TORCH_CHECK(w.dim() == 1 && w.numel() == S.n_weights && w.is_contiguous() &&
                  w.scalar_type() == h.scalar_type(),
              "conv_stacks: weights must be the ", S.n_weights,
              " kernel values, flat, of h's dtype; got ", w.sizes());
  TORCH_CHECK(bias.dim() == 1 && bias.numel() == S.n_biases && bias.is_contiguous() &&
                  (S.n_biases == 0 || bias.scalar_type() == h.scalar_type()),
              "conv_stacks: biases must be the ", S.n_biases, " bias values, flat, of h's dtype");
}

}  // namespace

// -> [logits (ops, B, H, W), intermediates (slots, B, H, W)]
std::vector<at::Tensor> conv_stacks_forward(const at::Tensor& h, const at::Tensor& w,
                                            const at::Tensor& bias, std::vector<int64_t> kh,
                                            std::vector<int64_t> kw, std::vector<bool> has_bias,
                                            std::vector<int64_t> layers, std::vector<bool> relu) {
  const Stacks S = make_stacks(kh, kw, has_bias, layers, relu);
  check_input(h, w, bias, S);
  const int64_t B = h.size(0), H = h.size(2), W = h.size(3);
  const int64_t ops = static_cast<int64_t>(S.layers.size());
  at::Tensor logits = at::empty({ops, B, H, W}, h.options());
  at::Tensor inter = at::empty({S.n_slots, B, H, W}, h.options());
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "conv_stacks_forward", [&] {
    forward_impl<scalar_t>(h.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(),
                           S.n_biases ? bias.data_ptr<scalar_t>() : nullptr,
                           logits.data_ptr<scalar_t>(), inter.data_ptr<scalar_t>(), B, H, W, S,
                           max_kw(S));
  });
  return {logits, inter};
}

// -> [grad_h or None, grad_weights or None, grad_biases or None]
std::vector<at::Tensor> conv_stacks_backward(const at::Tensor& h, const at::Tensor& w,
                                             const at::Tensor& inter,
                                             const at::Tensor& grad_logits,
                                             std::vector<int64_t> kh, std::vector<int64_t> kw,
                                             std::vector<bool> has_bias,
                                             std::vector<int64_t> layers, std::vector<bool> relu,
                                             bool need_h, bool need_w, bool need_bias) {
  const Stacks S = make_stacks(kh, kw, has_bias, layers, relu);
  const int64_t B = h.size(0), H = h.size(2), W = h.size(3);
  const int64_t ops = static_cast<int64_t>(S.layers.size());
  at::Tensor g = grad_logits.contiguous();
  TORCH_CHECK(g.scalar_type() == h.scalar_type() && g.dim() == 4 && g.size(0) == ops &&
                  g.size(1) == B && g.size(2) == H && g.size(3) == W,
              "conv_stacks: grad_logits must be (ops, B, H, W) of h's dtype");
  auto f64 = h.options().dtype(at::kDouble);
  at::Tensor grad_h = need_h ? at::empty_like(h) : at::Tensor();
  at::Tensor gw = need_w ? at::empty({B, S.n_weights}, f64) : at::Tensor();
  at::Tensor gb = need_bias && S.n_biases ? at::empty({B, S.n_biases}, f64) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "conv_stacks_backward", [&] {
    backward_impl<scalar_t>(h.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(),
                            inter.data_ptr<scalar_t>(), g.data_ptr<scalar_t>(),
                            need_h ? grad_h.data_ptr<scalar_t>() : nullptr,
                            need_w ? gw.data_ptr<double>() : nullptr,
                            gb.defined() ? gb.data_ptr<double>() : nullptr, B, H, W, S,
                            max_kw(S), max_taps(S));
  });
  return {grad_h, need_w ? gw.sum(0).to(h.scalar_type()) : at::Tensor(),
          gb.defined() ? gb.sum(0).to(h.scalar_type()) : at::Tensor()};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "The one-channel convolution stacks of a SASE supernet excitation edge.";
  m.def("forward", &conv_stacks_forward);
  m.def("backward", &conv_stacks_backward);
}
