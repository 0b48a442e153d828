// The loops of power_sums.cpp. Included twice there, inside two namespaces: once as is
// (baseline x86-64, or whatever the compiler targets) and once under
// `#pragma GCC target("avx2,fma")`; the entry points pick one at run time. So no include
// guard and no #include here: everything this uses is included before.
//
// Each work item is one sample; its positions are processed in chunks of kChunk, each row
// chunk converted once (`load_row`) and then reused by every weighted row: to float64 in the
// forward pass (the sums), to x's own type in the backward pass (the gradient of x is
// x's type: its per-element polynomial is evaluated in that precision, as torch's own
// backward of the same statistics would be; the weights' gradients are summed in float64).

// out[i] = T(row[i])
template <typename scalar_t, typename T>
inline void load_row(const scalar_t* __restrict row, T* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(row[i]);
}

// p2..p4 = p1^2..p1^4, as far as kmax needs.
template <typename T>
inline void powers(const T* __restrict p1, T* __restrict p2, T* __restrict p3,
                   T* __restrict p4, int kmax, int64_t n) {
  if (kmax >= 2)
    for (int64_t i = 0; i < n; ++i) p2[i] = p1[i] * p1[i];
  if (kmax >= 3)
    for (int64_t i = 0; i < n; ++i) p3[i] = p2[i] * p1[i];
  if (kmax >= 4)
    for (int64_t i = 0; i < n; ++i) p4[i] = p2[i] * p2[i];
}

// acc[i] += w · v[i] (the product in float64, the sum in acc's type)
template <typename V, typename T>
inline void axpy(double w, const V* __restrict v, T* __restrict acc, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += static_cast<T>(w * static_cast<double>(v[i]));
}

// Σ a[i] · b[i], in float64
template <typename T>
inline double dot(const double* __restrict a, const T* __restrict b, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * static_cast<double>(b[i]);
  return s;
}

// cm[i] = max(cm[i], s · v[i]) and ci[i] = c where s · v[i] is the new maximum (strictly
// greater: the first channel reaching the maximum keeps it, as torch.max). ci holds channel
// indices as float64, so the update is one vector blend.
inline void running_max(const double* __restrict v, double s, double c, double* __restrict cm,
                        double* __restrict ci, int64_t n) {
  const vd4 cv = {c, c, c, c};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const vd4 a = load4(v + i) * s, m = load4(cm + i);
    const auto gt = a > m;
    store4(cm + i, gt ? a : m);
    store4(ci + i, gt ? cv : load4(ci + i));
  }
  for (; i < n; ++i) {
    const double a = s * v[i];
    if (a > cm[i]) cm[i] = a, ci[i] = c;
  }
}

// max_i v[i] (n ≥ 1)
inline double row_max(const double* __restrict v, int64_t n) {
  double m = v[0];
  int64_t i = 0;
  if (n >= 8) {
    vd4 m0 = load4(v), m1 = load4(v + 4);
    for (i = 8; i + 8 <= n; i += 8) {
      const vd4 a = load4(v + i), b = load4(v + i + 4);
      m0 = a > m0 ? a : m0;
      m1 = b > m1 ? b : m1;
    }
    m0 = m1 > m0 ? m1 : m0;
    m = std::max(std::max(m0[0], m0[1]), std::max(m0[2], m0[3]));
  }
  for (; i < n; ++i) m = std::max(m, v[i]);
  return m;
}

// out[i] = (q1 + s1) + x ((q2 + s2) + x ((q3 + s3) + x (q4 + s4))): per-element coefficients
// q plus per-row constants s, each already carrying its power's factor.
template <typename T>
inline void horner(const T* __restrict x, const T* __restrict q1, const T* __restrict q2,
                   const T* __restrict q3, const T* __restrict q4, const double* s,
                   T* __restrict out, int64_t n) {
  const T s1 = static_cast<T>(s[0]), s2 = static_cast<T>(s[1]), s3 = static_cast<T>(s[2]),
          s4 = static_cast<T>(s[3]);
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    out[i] = (q1[i] + s1) + v * ((q2[i] + s2) + v * ((q3[i] + s3) + v * (q4[i] + s4)));
  }
}

// Whether v[0..n) are all equal (uniform weights: their term is a constant per row).
inline bool constant(const double* v, int64_t n) {
  for (int64_t i = 1; i < n; ++i)
    if (v[i] != v[0]) return false;
  return true;
}

// out[i] = scalar_t(g[i])
template <typename T, typename scalar_t>
inline void store_row(const T* __restrict g, scalar_t* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<scalar_t>(g[i]);
}

// The forward pass of one chunk when every row of the sample has one weight for all its
// entries (the raw moments: 1/C, 1/N): one loop per channel forms x..x⁴, adds them to the
// chunk's channel sums a[k] and to the channel's sums over the chunk, and updates the maxima —
// instead of a pass per power, per row and per maximum. The weights are applied at the end.
template <bool kChannelMax, typename scalar_t>
inline void forward_uniform_channel(const scalar_t* __restrict row, int64_t n,
                                    double* __restrict a1, double* __restrict a2,
                                    double* __restrict a3, double* __restrict a4,
                                    double* sums, double* peak, double* __restrict cm,
                                    double* __restrict ci, double scale, double c) {
  double s1 = 0.0, s2 = 0.0, s3 = 0.0, s4 = 0.0, m = *peak;
#pragma omp simd reduction(+ : s1, s2, s3, s4) reduction(max : m)
  for (int64_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(row[i]), x2 = x * x;
    a1[i] += x, a2[i] += x2, a3[i] += x2 * x, a4[i] += x2 * x2;
    s1 += x, s2 += x2, s3 += x2 * x, s4 += x2 * x2;
    m = std::max(m, x);
    if constexpr (kChannelMax) {
      const double v = scale * x;
      const bool gt = v > cm[i];  // strictly: the first channel reaching the max keeps it
      cm[i] = gt ? v : cm[i];
      ci[i] = gt ? c : ci[i];
    }
  }
  sums[0] += s1, sums[1] += s2, sums[2] += s3, sums[3] += s4;
  *peak = m;
}

template <typename scalar_t>
void forward(const Problem<scalar_t>& P) {
  const int64_t B = P.B, C = P.C, N = P.N;
  const Rows &cr = P.chan, &sr = P.space;
  const int kmax = max_power(cr, sr);
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<double> buf(static_cast<size_t>((kMaxPower + 1) * kChunk));
    double* pw[kMaxPower];
    for (int k = 0; k < kMaxPower; ++k) pw[k] = buf.data() + k * kChunk;
    double* cm = buf.data() + kMaxPower * kChunk;
    constexpr double kNegInf = -std::numeric_limits<double>::infinity();
    for (int64_t b = b0; b < b1; ++b) {
      double* space = P.space_out ? P.space_out + b * sr.J * C : nullptr;
      if (space) std::fill(space, space + sr.J * C, 0.0);
      if (P.smax) std::fill(P.smax + b * C, P.smax + (b + 1) * C, scalar_t(kNegInf));
      bool uniform = cr.J + sr.J > 0;  // (maxima alone: the general loop is leaner)
      for (int64_t j = 0; j < cr.J; ++j) uniform &= constant(cr.w + (b * cr.J + j) * C, C);
      for (int64_t j = 0; j < sr.J; ++j) uniform &= constant(sr.w + (b * sr.J + j) * N, N);
      for (int64_t p0 = 0; p0 < N; p0 += kChunk) {
        const int64_t n = std::min(kChunk, N - p0);
        if (uniform) {
          double* ci = P.cidx ? P.cidx + b * N + p0 : nullptr;
          if (P.cmax) {
            std::fill(cm, cm + n, kNegInf);
            std::fill(ci, ci + n, 0.0);
          }
          for (int k = 0; k < kMaxPower; ++k) std::fill(pw[k], pw[k] + n, 0.0);
          for (int64_t c = 0; c < C; ++c) {
            double sums[kMaxPower] = {0.0, 0.0, 0.0, 0.0};
            double peak = P.smax ? static_cast<double>(P.smax[b * C + c]) : kNegInf;
            const scalar_t* row = P.x + (b * C + c) * N + p0;
            const double scale = P.scale_of(b, c), channel = static_cast<double>(c);
            if (P.cmax) {
              forward_uniform_channel<true>(row, n, pw[0], pw[1], pw[2], pw[3], sums, &peak, cm,
                                            ci, scale, channel);
            } else {
              forward_uniform_channel<false>(row, n, pw[0], pw[1], pw[2], pw[3], sums, &peak,
                                             nullptr, nullptr, scale, channel);
            }
            for (int64_t j = 0; j < sr.J; ++j) {
              space[j * C + c] += sr.w[(b * sr.J + j) * N] * sums[sr.pow[j] - 1];
            }
            if (P.smax) P.smax[b * C + c] = static_cast<scalar_t>(peak);
          }
          for (int64_t j = 0; j < cr.J; ++j) {
            const double w = cr.w[(b * cr.J + j) * C];
            const double* a = pw[cr.pow[j] - 1];
            double* out = P.chan_out + (b * cr.J + j) * N + p0;
            for (int64_t i = 0; i < n; ++i) out[i] = w * a[i];
          }
          if (P.cmax) store_row(cm, P.cmax + b * N + p0, n);
          continue;
        }
        for (int64_t j = 0; j < cr.J; ++j) {
          double* acc = P.chan_out + (b * cr.J + j) * N + p0;
          std::fill(acc, acc + n, 0.0);
        }
        double* ci = P.cidx ? P.cidx + b * N + p0 : nullptr;
        if (P.cmax) {
          std::fill(cm, cm + n, kNegInf);
          std::fill(ci, ci + n, 0.0);
        }
        for (int64_t c = 0; c < C; ++c) {
          load_row(P.x + (b * C + c) * N + p0, pw[0], n);
          powers(pw[0], pw[1], pw[2], pw[3], kmax, n);
          for (int64_t j = 0; j < cr.J; ++j) {
            axpy(cr.w[(b * cr.J + j) * C + c], pw[cr.pow[j] - 1],
                 P.chan_out + (b * cr.J + j) * N + p0, n);
          }
          for (int64_t j = 0; j < sr.J; ++j) {
            space[j * C + c] += dot(sr.w + (b * sr.J + j) * N + p0, pw[sr.pow[j] - 1], n);
          }
          if (P.cmax) running_max(pw[0], P.scale_of(b, c), static_cast<double>(c), cm, ci, n);
          if (P.smax) {
            scalar_t& m = P.smax[b * C + c];
            m = std::max(m, static_cast<scalar_t>(row_max(pw[0], n)));
          }
        }
        if (P.cmax) store_row(cm, P.cmax + b * N + p0, n);
      }
    }
  });
}

template <typename scalar_t>
void backward(const Problem<scalar_t>& P) {
  const int64_t B = P.B, C = P.C, N = P.N;
  const Rows &cr = P.chan, &sr = P.space;
  const int kmax = max_power(cr, sr);
  // x's powers are needed for the weights' gradients only; the gradient of x needs x.
  const bool need_powers = P.grad_chan_w || P.grad_space_w;
  using T = scalar_t;  // the backward pass's element type (see the top of this file)
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<T> buf(static_cast<size_t>((3 * kMaxPower + 2) * kChunk));
    T *pw[kMaxPower], *q[kMaxPower], *base[kMaxPower];
    for (int k = 0; k < kMaxPower; ++k) {
      pw[k] = buf.data() + k * kChunk;
      q[k] = buf.data() + (kMaxPower + k) * kChunk;
      base[k] = buf.data() + (2 * kMaxPower + k) * kChunk;
    }
    T* g = buf.data() + 3 * kMaxPower * kChunk;
    T* gm = g + kChunk;
    std::vector<char> found(static_cast<size_t>(C)), uniform(static_cast<size_t>(sr.J)),
        chan_uniform(static_cast<size_t>(cr.J));
    for (int64_t b = b0; b < b1; ++b) {
      std::fill(found.begin(), found.end(), 0);
      if (P.grad_space_w) {
        std::fill(P.grad_space_w + b * sr.J * N, P.grad_space_w + (b + 1) * sr.J * N, 0.0);
      }
      if (P.grad_chan_w) {
        std::fill(P.grad_chan_w + b * cr.J * C, P.grad_chan_w + (b + 1) * cr.J * C, 0.0);
      }
      if (P.grad_scale) std::fill(P.grad_scale + b * C, P.grad_scale + (b + 1) * C, 0.0);
      // Channel rows with one weight for every channel (the moments' 1/C) add the same
      // coefficients for every channel: summed once per chunk into `base`. A channel with
      // terms of its own for a power starts them from a copy of that power's base.
      for (int64_t j = 0; j < cr.J; ++j) {
        chan_uniform[j] = P.g_chan && constant(cr.w + (b * cr.J + j) * C, C);
      }
      for (int64_t p0 = 0; p0 < N; p0 += kChunk) {
        const int64_t n = std::min(kChunk, N - p0);
        if (P.g_cmax) load_row(P.g_cmax + b * N + p0, gm, n);
        for (int64_t j = 0; j < sr.J; ++j) {
          uniform[j] = P.g_space && constant(sr.w + (b * sr.J + j) * N + p0, n);
        }
        for (int k = 0; k < kMaxPower; ++k) std::fill(base[k], base[k] + n, T(0));
        for (int64_t j = 0; j < cr.J; ++j) {
          if (!chan_uniform[j]) continue;
          const int k = cr.pow[j];
          axpy(k * cr.w[(b * cr.J + j) * C], P.g_chan + (b * cr.J + j) * N + p0, base[k - 1], n);
        }
        for (int64_t c = 0; c < C; ++c) {
          load_row(P.x + (b * C + c) * N + p0, pw[0], n);
          if (need_powers) powers(pw[0], pw[1], pw[2], pw[3], kmax, n);
          const T* coef[kMaxPower];  // base[k], or q[k] once this channel has its own terms
          for (int k = 0; k < kMaxPower; ++k) coef[k] = base[k];
          auto own = [&](int k) {  // power k's coefficients of this channel alone
            if (coef[k - 1] != q[k - 1]) {
              std::copy(base[k - 1], base[k - 1] + n, q[k - 1]);
              coef[k - 1] = q[k - 1];
            }
            return q[k - 1];
          };
          if (P.g_chan) {
            for (int64_t j = 0; j < cr.J; ++j) {
              const int k = cr.pow[j];
              const double* gj = P.g_chan + (b * cr.J + j) * N + p0;
              if (!chan_uniform[j]) axpy(k * cr.w[(b * cr.J + j) * C + c], gj, own(k), n);
              if (P.grad_chan_w) {
                P.grad_chan_w[(b * cr.J + j) * C + c] += dot(gj, pw[k - 1], n);
              }
            }
          }
          double sigma[kMaxPower] = {0.0, 0.0, 0.0, 0.0};
          if (P.g_space) {
            for (int64_t j = 0; j < sr.J; ++j) {
              const int k = sr.pow[j];
              const double gs = P.g_space[(b * sr.J + j) * C + c];
              const double* wj = sr.w + (b * sr.J + j) * N + p0;
              if (uniform[j]) {
                sigma[k - 1] += k * gs * wj[0];
              } else {
                axpy(k * gs, wj, own(k), n);
              }
              if (P.grad_space_w) {
                axpy(gs, pw[k - 1], P.grad_space_w + (b * sr.J + j) * N + p0, n);
              }
            }
          }
          horner(pw[0], coef[0], coef[1], coef[2], coef[3], sigma, g, n);
          if (P.smax && !found[c]) {  // the first position reaching the max
            const T m = static_cast<T>(P.smax[b * C + c]);
            for (int64_t i = 0; i < n; ++i) {
              if (pw[0][i] == m) {
                g[i] += static_cast<T>(P.g_smax[b * C + c]);
                found[c] = 1;
                break;
              }
            }
          }
          store_row(g, P.grad_x + (b * C + c) * N + p0, n);
        }
        if (P.g_cmax) {  // the channel maximum: to its arg-max channel, one pass per chunk
          const double* ci = P.cidx + b * N + p0;
          for (int64_t i = 0; i < n; ++i) {
            const int64_t c = static_cast<int64_t>(ci[i]);
            const int64_t at = (b * C + c) * N + p0 + i;
            const double s = P.scale_of(b, c);
            P.grad_x[at] = static_cast<scalar_t>(static_cast<double>(P.grad_x[at]) + s * gm[i]);
            if (P.grad_scale) P.grad_scale[b * C + c] += gm[i] * static_cast<double>(P.x[at]);
          }
        }
      }
    }
  });
}
