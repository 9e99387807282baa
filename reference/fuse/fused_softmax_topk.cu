// Fused softmax + top-K: one pass over the logits, online softmax, block-wide radix selection.
// API: fused_softmax_topk.cuh. Design, memory access pattern and complexity: README.md.
//
// Each row of V logits is read by `splits` blocks (1 when there are enough rows to fill the GPU). A block
// streams its part of the row in tiles of 4096 logits (16 per thread, four coalesced 16-byte loads each),
// software-pipelined over two register buffers: the next tile's loads are issued before the current tile is
// folded in, so that memory stays busy through the compute and the barriers. For every tile, in registers:
//   * folds the tile into the thread's online softmax statistics (running max m, sum s of exp(x - m)),
//   * offers each logit to the block's top-K candidate buffer in shared memory, which admits only keys
//     at or above a threshold: the K-th largest key seen by the last selection. A thread whose largest logit
//     of the tile is below it rejects all 16 with one compare; the few admitted keys of a warp are appended
//     with one prefix sum and one atomic.
// The first tile's threshold is the K-th largest of the threads' maxima in it, so that it admits little more
// than K keys. When the buffer fills up, a block-wide radix select keeps its K largest keys and raises the
// threshold. At the end the block merges its threads' (m, s) pairs, and either sorts its K survivors and
// writes the outputs (one block per row) or writes them with (m, s) to a small workspace that a second kernel
// merges (row split across blocks). Logits are never written back and never re-read from global memory.
//
// Candidates are 64-bit keys: the float's bits mapped to an order-preserving uint32 in the high half and
// ~index in the low half, so a larger key means a larger logit, then a lower index. Keys of distinct
// positions are distinct, which makes the selection exact with any number of equal logits, and key 0
// (the image of a NaN at index -1) never occurs, so 0 marks an empty slot.
#include "fused_softmax_topk.cuh"

#include <climits>
#include <cstdint>

namespace fstk {

typedef unsigned long long u64;

constexpr int kThreads = 256;                           // threads per block, 8 warps
constexpr int kWarps = kThreads / 32;
constexpr int kVecPerThread = 4;                        // float4 loads per thread per tile
constexpr int kTileVecs = kThreads * kVecPerThread;     // float4s per tile
constexpr int kTile = 4 * kTileVecs;                    // logits per tile: 4096
constexpr int kSlack = 512;                             // buffer fill beyond K that triggers no selection yet
constexpr int kMergeCap = 4096;                         // keys one merge block holds: splits * K <= kMergeCap
constexpr int kMaxSplits = 64;
constexpr int kMinTilesPerSplit = 2;
constexpr unsigned kFull = 0xffffffffu;
constexpr float kLog2e = 1.4426950408889634f;

static_assert(FSTK_MAX_K <= kThreads, "compaction and the final sort use one thread per kept key");
static_assert(kThreads == 256, "the radix histogram has one bin per thread");

struct Shared {
  int hist[256];
  u64 warp_and[kWarps];
  u64 warp_or[kWarps];
  float warp_m[kWarps];
  float warp_s[kWarps];
  u64 threshold;  // keys below it cannot be in the top K any more (0 admits everything)
  int count;      // keys in the candidate buffer
  int digit;      // radix select: chosen bucket, keys in buckets above it, keys in it
  int above;
  int in_bin;
  float row_m;  // softmax statistics of the block's part of the row
  float row_s;
};

// ---- keys ---------------------------------------------------------------------------------------------

__device__ __forceinline__ unsigned ordered_bits(float x) {
  const unsigned u = __float_as_uint(x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ u64 make_key(float x, int index) {
  return (static_cast<u64>(ordered_bits(x)) << 32) | static_cast<unsigned>(~index);
}

__device__ __forceinline__ float key_value(u64 key) {
  const unsigned o = static_cast<unsigned>(key >> 32);
  return __uint_as_float((o & 0x80000000u) ? (o & 0x7fffffffu) : ~o);
}

__device__ __forceinline__ int key_index(u64 key) { return static_cast<int>(~static_cast<unsigned>(key)); }

// ---- softmax statistics: (m, s) stands for s * exp(m) = sum of exp(x) ---------------------------------

__device__ __forceinline__ void stat_merge(float& m, float& s, float m2, float s2) {
  const float mn = fmaxf(m, m2);
  if (mn == -INFINITY) return;  // both sides empty
  s = s * exp2f((m - mn) * kLog2e) + s2 * exp2f((m2 - mn) * kLog2e);
  m = mn;
}

// Leaves the block's merged (m, s) in sh.row_m, sh.row_s. Contains barriers.
__device__ void block_stat(float m, float s, Shared& sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(kFull, m, o);
    const float s2 = __shfl_xor_sync(kFull, s, o);
    stat_merge(m, s, m2, s2);
  }
  if (lane == 0) {
    sh.warp_m[warp] = m;
    sh.warp_s[warp] = s;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float bm = sh.warp_m[0], bs = sh.warp_s[0];
    for (int w = 1; w < kWarps; ++w) stat_merge(bm, bs, sh.warp_m[w], sh.warp_s[w]);
    sh.row_m = bm;
    sh.row_s = bs;
  }
  __syncthreads();
}

// ---- selection ----------------------------------------------------------------------------------------

__device__ __forceinline__ u64 warp_and(u64 v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v &= __shfl_xor_sync(kFull, v, o);
  return v;
}

__device__ __forceinline__ u64 warp_or(u64 v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v |= __shfl_xor_sync(kFull, v, o);
  return v;
}

// The smallest t with exactly k of the n > k keys in buf[0, n) >= t (the same in every thread). Keys are
// distinct apart from zeros (empty slots), and at least k are nonzero. Radix select, 8 bits per pass,
// starting below the bits all keys share; it stops as soon as every key of the chosen bucket is wanted.
// All threads must call it; it reads buf and writes only sh's scratch fields.
__device__ u64 select_threshold(const u64* buf, int n, int k, Shared& sh) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  u64 all_and = ~0ull, any_or = 0ull;
  for (int i = tid; i < n; i += kThreads) {
    const u64 key = buf[i];
    all_and &= key;
    any_or |= key;
  }
  all_and = warp_and(all_and);
  any_or = warp_or(any_or);
  if (lane == 0) {
    sh.warp_and[warp] = all_and;
    sh.warp_or[warp] = any_or;
  }
  __syncthreads();
  all_and = sh.warp_and[0];
  any_or = sh.warp_or[0];
  for (int w = 1; w < kWarps; ++w) {
    all_and &= sh.warp_and[w];
    any_or |= sh.warp_or[w];
  }
  const u64 differ = all_and ^ any_or;
  int hi = differ ? 63 - __clzll(static_cast<long long>(differ)) : -1;  // highest bit where keys differ
  u64 mask = hi >= 63 ? 0ull : (~0ull << (hi + 1));                      // bits already decided
  u64 prefix = all_and & mask;
  int rank = k;  // the wanted key is the rank-th largest among keys matching prefix under mask

  while (hi >= 0) {
    const int shift = max(hi - 7, 0);
    const unsigned digit_mask = (2u << (hi - shift)) - 1u;
    sh.hist[tid] = 0;
    __syncthreads();
    for (int i = tid; i < n; i += kThreads) {
      const u64 key = buf[i];
      if ((key & mask) == prefix) atomicAdd(&sh.hist[static_cast<unsigned>(key >> shift) & digit_mask], 1);
    }
    __syncthreads();
    if (warp == 0) {  // find the bucket holding the rank-th largest: lane l scans buckets 255-8l .. 248-8l
      int c[8];
      int sum = 0;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        c[j] = sh.hist[255 - 8 * lane - j];
        sum += c[j];
      }
      int incl = sum;
#pragma unroll
      for (int d = 1; d < 32; d <<= 1) {
        const int t = __shfl_up_sync(kFull, incl, d);
        if (lane >= d) incl += t;
      }
      const int excl = incl - sum;
      if (excl < rank && rank <= incl) {
        int acc = excl;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          if (acc + c[j] >= rank) {
            sh.digit = 255 - 8 * lane - j;
            sh.above = acc;
            sh.in_bin = c[j];
            break;
          }
          acc += c[j];
        }
      }
    }
    __syncthreads();
    rank -= sh.above;
    prefix |= static_cast<u64>(sh.digit) << shift;
    mask |= static_cast<u64>(digit_mask) << shift;
    hi = shift - 1;
    if (sh.in_bin == rank) break;  // all keys of this bucket are wanted: prefix is the threshold
  }
  return prefix;
}

// Keeps the k largest of the n > k keys in buf[0, n) (as for select_threshold), in no particular order, in
// buf[0, k); sets sh.count = k and sh.threshold to their smallest. All threads must call it.
__device__ void block_select(u64* buf, int n, int k, Shared& sh) {
  const int tid = threadIdx.x;
  const u64 t = select_threshold(buf, n, k, sh);
  // Exactly k keys are >= t. Move them to buf[0, k): first take what sits there already, so that no
  // write lands on a key another thread has yet to read.
  const u64 mine = tid < k ? buf[tid] : 0ull;
  if (tid == 0) sh.count = 0;
  __syncthreads();
  if (tid < k && mine >= t) {
    const int p = atomicAdd(&sh.count, 1);
    if (p < k) buf[p] = mine;
  }
  for (int i = k + tid; i < n; i += kThreads) {
    const u64 key = buf[i];
    if (key >= t) {
      const int p = atomicAdd(&sh.count, 1);
      if (p < k) buf[p] = key;
    }
  }
  __syncthreads();
  if (tid == 0) {
    sh.count = min(sh.count, k);
    sh.threshold = t;
  }
  __syncthreads();
}

// Sorts buf[0, n), n <= K, descending (zeros pad it to a power of two) and writes the K results of a row.
__device__ void sort_and_write(u64* buf, int n, int K, float m, float s, int* idx_out, float* prob_out) {
  const int tid = threadIdx.x;
  int p2 = 1;
  while (p2 < K) p2 <<= 1;
  for (int i = n + tid; i < p2; i += kThreads) buf[i] = 0ull;
  __syncthreads();
  for (int size = 2; size <= p2; size <<= 1) {  // bitonic sort, one thread per element
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      if (tid < p2) {
        const int j = tid ^ stride;
        if (j > tid) {
          const u64 a = buf[tid], b = buf[j];
          const bool descending = (tid & size) == 0;
          if (descending ? a < b : a > b) {
            buf[tid] = b;
            buf[j] = a;
          }
        }
      }
      __syncthreads();
    }
  }
  if (tid < K) {
    const u64 key = buf[tid];
    idx_out[tid] = key_index(key);
    prob_out[tid] = expf(key_value(key) - m) / s;
  }
}

// ---- streaming --------------------------------------------------------------------------------------

// Admission test against the threshold key, on the float first: the 64-bit key is built only for a logit
// equal to the threshold's value (tv = -inf when the threshold is 0 and admits every key). Equivalent to
// make_key(x, index) >= threshold for every logit the kernel supports (not NaN).
__device__ __forceinline__ bool admitted(float x, int index, float tv, u64 threshold) {
  return (x > tv) | ((x == tv) & (make_key(x, index) >= threshold));  // no branches: & and | on bools
}

// 2^x on the special function unit alone. ex2.approx.ftz is within 2 ulp and flushes results below 2^-126
// to zero, which no sum of these terms (each row's largest term is 1) can notice; plain exp2f adds a
// three-instruction fix-up for such results to every call.
__device__ __forceinline__ float sfu_exp2(float x) {
#if defined(__CUDA_ARCH__)
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
#else
  return exp2f(x);
#endif
}

__device__ __forceinline__ float threshold_value(u64 threshold) {
  return threshold == 0ull ? -INFINITY : key_value(threshold);
}

// Where the N logits a thread absorbs come from. Tile: 4 * kVecPerThread logits of this thread's float4s
// p = base + u * kThreads + tid; logit 4u + c is row index e0 + 4 u kThreads + c, valid when p < v_end.
struct TileLayout {
  int e0;    // row index of this thread's first logit in the tile
  int room;  // v_end - base - tid: float4 u is valid when u * kThreads < room
  __device__ __forceinline__ int index(int j) const { return e0 + 4 * kThreads * (j >> 2) + (j & 3); }
  __device__ __forceinline__ bool valid(int j) const { return (j >> 2) * kThreads < room; }
};

// One scalar logit at `id` (id < 0: none).
struct ScalarLayout {
  int id;
  __device__ __forceinline__ int index(int) const { return id; }
  __device__ __forceinline__ bool valid(int) const { return id >= 0; }
};

// Folds the thread's N logits (invalid ones are -inf) into its online softmax statistics (m, s) and appends
// the admitted ones to the candidate buffer: one warp-wide scan of the per-thread counts, one atomic per warp.
// Every thread of the block calls it with the same N; `filled` becomes the buffer end after this thread's
// keys. Most calls return after the __any_sync once the threshold has risen.
template <int N, class Layout>
__device__ __forceinline__ void absorb(const float (&x)[N], const Layout& at, float& m, float& s, float tv,
                                       u64 threshold, u64* buf, Shared& sh, int& filled) {
  float local_max = x[0];
#pragma unroll
  for (int j = 1; j < N; ++j) local_max = fmaxf(local_max, x[j]);
  const float m_new = fmaxf(m, local_max);
  if (m_new != -INFINITY) {  // one rescale per call; exp(-inf) = 0 takes care of empty slots
    float acc = 0.f;
#pragma unroll
    for (int j = 0; j < N; ++j) acc += sfu_exp2((x[j] - m_new) * kLog2e);
    s = s * sfu_exp2((m - m_new) * kLog2e) + acc;
    m = m_new;
  }

  unsigned take = 0u;
  if (local_max >= tv) {  // else no logit of this thread can be admitted: the usual case on a long row
#pragma unroll
    for (int j = 0; j < N; ++j) take |= (at.valid(j) & admitted(x[j], at.index(j), tv, threshold)) ? 1u << j : 0u;
  }
  if (!__any_sync(kFull, take != 0u)) return;
  const int lane = threadIdx.x & 31;
  const int count = __popc(take);
  int end = count;  // inclusive prefix sum of the counts over the warp's lanes
#pragma unroll
  for (int d = 1; d < 32; d <<= 1) {
    const int t = __shfl_up_sync(kFull, end, d);
    if (lane >= d) end += t;
  }
  int base = 0;
  if (lane == 31) base = atomicAdd(&sh.count, end);
  base = __shfl_sync(kFull, base, 31);
  int pos = base + end - count;
#pragma unroll
  for (int j = 0; j < N; ++j) {
    if (take & (1u << j)) buf[pos++] = make_key(x[j], at.index(j));
  }
  if (count > 0) filled = max(filled, pos);
}

// This thread's float4s of the tile at `base`; past v_end they read as -inf and are not loaded.
__device__ __forceinline__ void load_tile(const float4* __restrict__ xv, int base, int v_end,
                                          float (&v)[4 * kVecPerThread]) {
#pragma unroll
  for (int u = 0; u < kVecPerThread; ++u) {
    const int p = base + u * kThreads + threadIdx.x;
    float4 q = make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
    if (p < v_end) q = __ldcs(xv + p);  // streamed once: evict-first
    v[4 * u + 0] = q.x;
    v[4 * u + 1] = q.y;
    v[4 * u + 2] = q.z;
    v[4 * u + 3] = q.w;
  }
}

// Grid: rows * splits blocks; block b handles part b % splits of row b / splits. Dynamic shared memory:
// (K + kSlack + kTile) keys. splits == 1 writes idx/probs; otherwise K keys (0-padded) and (m, s) per block
// go to ws_keys/ws_stats for merge_topk_kernel.
__global__ void __launch_bounds__(kThreads, 4) partial_topk_kernel(const float* __restrict__ logits, int V, int K,
                                                                int splits, int* __restrict__ out_idx,
                                                                float* __restrict__ out_probs,
                                                                u64* __restrict__ ws_keys,
                                                                float2* __restrict__ ws_stats) {
  extern __shared__ u64 buf[];
  __shared__ Shared sh;
  const int tid = threadIdx.x;
  const int row = blockIdx.x / splits;
  const int split = blockIdx.x - row * splits;
  const float* x = logits + static_cast<size_t>(row) * V;

  // The row's 16-byte aligned float4s are divided evenly between its blocks; the at most 3 + 3 logits
  // before and after them are taken by part 0 as scalars.
  const int head = min(V, static_cast<int>(((16u - (reinterpret_cast<uintptr_t>(x) & 15u)) & 15u) >> 2));
  const int nvec = (V - head) >> 2;
  const int tail = V - head - 4 * nvec;
  const float4* xv = reinterpret_cast<const float4*>(x + head);
  const int v_begin = static_cast<int>(static_cast<long long>(nvec) * split / splits);
  const int v_end = static_cast<int>(static_cast<long long>(nvec) * (split + 1) / splits);
  const int limit = K + kSlack;

  // Two tiles' worth of registers, a and b: the loads of the next tile go out before this one is folded in,
  // and the loads of the one after it before the wait for the next, so that the loads stay in flight through
  // the compute and the barriers (a copy from one buffer to the other would wait for them instead).
  float a[4 * kVecPerThread], b[4 * kVecPerThread];
  load_tile(xv, v_begin, v_end, a);

  if (tid == 0) {
    sh.count = 0;
    sh.threshold = 0ull;
  }
  __syncthreads();

  float m = -INFINITY, s = 0.f;
  u64 threshold = 0ull;
  float tv = -INFINITY;
  int filled = 0;
  if (split == 0 && head + tail > 0) {  // uniform over the block; adds at most 6 keys, far below limit
    float v[1] = {-INFINITY};
    ScalarLayout at{-1};
    if (tid < head) {
      at.id = tid;
    } else if (tid < head + tail) {
      at.id = head + 4 * nvec + (tid - head);
    }
    if (at.id >= 0) v[0] = x[at.id];
    absorb(v, at, m, s, tv, threshold, buf, sh, filled);
  }

  if (v_begin < v_end && K < kThreads) {  // uniform
    // The K-th largest of the threads' largest keys in the first tile bounds the K-th largest of the block's
    // part from below: with it as threshold the first tile admits little more than K keys instead of all
    // 4096, which the first selection would then have to sift. Done once, before the loop, which then carries
    // none of its registers (a spill of the next tile's registers would wait for their loads).
    const TileLayout at{head + 4 * (v_begin + tid), v_end - v_begin - tid};
    u64 best = 0ull;
#pragma unroll
    for (int j = 0; j < 4 * kVecPerThread; ++j) {
      const u64 key = at.valid(j) ? make_key(a[j], at.index(j)) : 0ull;
      best = key > best ? key : best;
    }
    u64* scratch = buf + limit;  // free: the buffer holds at most the 6 head and tail keys so far
    scratch[tid] = best;
    if (__syncthreads_count(best != 0ull) >= K) {
      threshold = select_threshold(scratch, kThreads, K, sh);
      tv = threshold_value(threshold);
      if (tid == 0) sh.threshold = threshold;
    }
    __syncthreads();  // scratch is read by all before the first keys may land on it
  }

  // Folds the tile at `base`, held in v, in; selects when the buffer has grown past limit.
  auto step = [&](const float (&v)[4 * kVecPerThread], int base) {
    const TileLayout at{head + 4 * (base + tid), v_end - base - tid};
    absorb(v, at, m, s, tv, threshold, buf, sh, filled);
    // Before this tile the buffer held <= limit keys, after it <= limit + kTile: the allocated capacity.
    if (__syncthreads_or(filled > limit)) {  // only a selection moves the threshold
      block_select(buf, sh.count, K, sh);
      threshold = sh.threshold;
      tv = threshold_value(threshold);
    }
    filled = 0;
  };

  for (int base = v_begin; base < v_end; base += 2 * kTileVecs) {  // all -inf, nothing loaded, past v_end
    load_tile(xv, base + kTileVecs, v_end, b);
    step(a, base);
    if (base + kTileVecs >= v_end) break;
    load_tile(xv, base + 2 * kTileVecs, v_end, a);
    step(b, base + kTileVecs);
  }
  __syncthreads();

  int n = sh.count;
  if (n > K) {
    block_select(buf, n, K, sh);
    n = K;
  }
  block_stat(m, s, sh);

  if (splits == 1) {
    sort_and_write(buf, n, K, sh.row_m, sh.row_s, out_idx + static_cast<size_t>(row) * K,
                   out_probs + static_cast<size_t>(row) * K);
  } else {
    u64* dst = ws_keys + static_cast<size_t>(blockIdx.x) * K;
    for (int i = tid; i < K; i += kThreads) dst[i] = i < n ? buf[i] : 0ull;
    if (tid == 0) ws_stats[blockIdx.x] = make_float2(sh.row_m, sh.row_s);
  }
}

// One block per row: merges the row's splits * K candidate keys and (m, s) pairs, writes the K results.
__global__ void __launch_bounds__(kThreads) merge_topk_kernel(const u64* __restrict__ ws_keys,
                                                              const float2* __restrict__ ws_stats, int splits,
                                                              int K, int* __restrict__ out_idx,
                                                              float* __restrict__ out_probs) {
  __shared__ u64 buf[kMergeCap];
  __shared__ Shared sh;
  const int tid = threadIdx.x;
  const int row = blockIdx.x;
  const int n = splits * K;
  const u64* src = ws_keys + static_cast<size_t>(row) * n;
  for (int i = tid; i < n; i += kThreads) buf[i] = src[i];
  float m = -INFINITY, s = 0.f;
  for (int i = tid; i < splits; i += kThreads) {
    const float2 st = ws_stats[static_cast<size_t>(row) * splits + i];
    stat_merge(m, s, st.x, st.y);
  }
  block_stat(m, s, sh);  // its barriers also publish buf
  block_select(buf, n, K, sh);
  sort_and_write(buf, K, K, sh.row_m, sh.row_s, out_idx + static_cast<size_t>(row) * K,
                 out_probs + static_cast<size_t>(row) * K);
}

// ---- host side --------------------------------------------------------------------------------------

struct DeviceState {
  int sms = 0;
  int blocks_per_sm = 0;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

constexpr int kMaxDevices = 64;
DeviceState g_devices[kMaxDevices];  // not thread-safe: one host thread drives the launcher at a time

size_t partial_smem_bytes(int K) { return static_cast<size_t>(K + kSlack + kTile) * sizeof(u64); }

cudaError_t device_state(DeviceState** out) {
  int dev = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err != cudaSuccess) return err;
  if (dev < 0 || dev >= kMaxDevices) return cudaErrorInvalidDevice;
  DeviceState& d = g_devices[dev];
  if (d.sms == 0) {
    err = cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, dev);
    if (err != cudaSuccess) return err;
    err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&d.blocks_per_sm, partial_topk_kernel, kThreads,
                                                        partial_smem_bytes(FSTK_MAX_K));
    if (err != cudaSuccess) return err;
    d.blocks_per_sm = max(d.blocks_per_sm, 1);
  }
  *out = &d;
  return cudaSuccess;
}

bool valid_shape(long long rows, int V, int K) {
  return rows >= 0 && rows <= INT_MAX && V >= 1 && K >= 1 && K <= FSTK_MAX_K && K <= V;
}

// One block per row when the rows fill at least half of the GPU's block slots. Otherwise as many blocks per row
// as fit the grid in one wave, each split at least two tiles long, and the merge's splits * K keys within one
// block's shared memory. Measured with the previous kernel on an H200 (132 SMs, 4 blocks each) at V = 128256,
// K = 64: 512 rows took 182 us with 1 split, 209 with 2 and 237 with 3 (a second, partial wave); 32 rows
// took 36.0 us with 8 splits and 36.5 with 15 (flat there).
int choose_splits(int rows, int V, int K, const DeviceState& d) {
  const long long slots = static_cast<long long>(d.sms) * d.blocks_per_sm;
  if (rows <= 0 || 2LL * rows >= slots) return 1;
  const long long by_length = (V / 4) / (kMinTilesPerSplit * kTileVecs);
  const long long wanted = slots / rows;
  const long long cap = min(kMergeCap / K, kMaxSplits);
  return static_cast<int>(max(1LL, min(min(wanted, by_length), cap)));
}

}  // namespace fstk

extern "C" size_t fused_softmax_topk_workspace_size(int rows, int K, int splits) {
  if (splits <= 1 || rows <= 0 || K <= 0) return 0;
  return static_cast<size_t>(rows) * splits * (static_cast<size_t>(K) * sizeof(unsigned long long) + sizeof(float2));
}

extern "C" int fused_softmax_topk_choose_splits(int rows, int V, int K) {
  fstk::DeviceState* d = nullptr;
  if (!fstk::valid_shape(rows, V, K) || fstk::device_state(&d) != cudaSuccess) return 1;
  return fstk::choose_splits(rows, V, K, *d);
}

extern "C" cudaError_t launch_fused_softmax_topk_ex(const float* logits, int* idx, float* probs, int rows, int V,
                                                    int K, int splits, void* workspace, size_t workspace_bytes,
                                                    cudaStream_t stream) {
  using namespace fstk;
  if (!valid_shape(rows, V, K)) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  if (logits == nullptr || idx == nullptr || probs == nullptr) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(logits) % sizeof(float) != 0) return cudaErrorMisalignedAddress;
  DeviceState* d = nullptr;
  cudaError_t err = device_state(&d);
  if (err != cudaSuccess) return err;
  if (splits <= 0) splits = choose_splits(rows, V, K, *d);
  splits = min(splits, min(kMaxSplits, kMergeCap / K));
  if (static_cast<long long>(rows) * splits > INT_MAX) return cudaErrorInvalidValue;
  u64* ws_keys = nullptr;
  float2* ws_stats = nullptr;
  if (splits > 1) {
    if (workspace == nullptr || workspace_bytes < fused_softmax_topk_workspace_size(rows, K, splits)) {
      return cudaErrorInvalidValue;
    }
    ws_keys = static_cast<u64*>(workspace);
    ws_stats = reinterpret_cast<float2*>(ws_keys + static_cast<size_t>(rows) * splits * K);
  }
  partial_topk_kernel<<<rows * splits, kThreads, partial_smem_bytes(K), stream>>>(logits, V, K, splits, idx, probs,
                                                                                 ws_keys, ws_stats);
  err = cudaGetLastError();
  if (err != cudaSuccess || splits == 1) return err;
  merge_topk_kernel<<<rows, kThreads, 0, stream>>>(ws_keys, ws_stats, splits, K, idx, probs);
  return cudaGetLastError();
}

extern "C" cudaError_t launch_fused_softmax_topk(const float* logits, int* idx, float* probs, int B, int T, int V,
                                                 int K, cudaStream_t stream) {
  using namespace fstk;
  if (B < 0 || T < 0) return cudaErrorInvalidValue;
  const long long rows = static_cast<long long>(B) * T;
  if (!valid_shape(rows, V, K)) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  DeviceState* d = nullptr;
  cudaError_t err = device_state(&d);
  if (err != cudaSuccess) return err;
  const int splits = choose_splits(static_cast<int>(rows), V, K, *d);
  const size_t need = fused_softmax_topk_workspace_size(static_cast<int>(rows), K, splits);
  if (need > d->workspace_bytes) {  // grow-only; freeing waits for work that may still use the old one
    if (d->workspace != nullptr) {
      cudaDeviceSynchronize();
      cudaFree(d->workspace);
      d->workspace = nullptr;
      d->workspace_bytes = 0;
    }
    err = cudaMalloc(&d->workspace, need);
    if (err != cudaSuccess) return err;
    d->workspace_bytes = need;
  }
  return launch_fused_softmax_topk_ex(logits, idx, probs, static_cast<int>(rows), V, K, splits, d->workspace,
                                      d->workspace_bytes, stream);
}
