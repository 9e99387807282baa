// Fused softmax + top-K over the last axis of logits [B, T, V] (float32, row-major, contiguous).
//
// Public API (C linkage, so that it can be called through ctypes/cffi as well as from C++):
//
//   cudaError_t launch_fused_softmax_topk(const float* logits, int* idx, float* probs,
//                                         int B, int T, int V, int K, cudaStream_t stream);
//
//     idx   [B*T, K] int32:   the K largest logits of each row, by descending value; equal values are
//                             ordered by ascending index (the order a stable descending sort gives).
//     probs [B*T, K] float32: softmax(logits row)[idx], computed with the row maximum subtracted.
//     1 <= K <= min(V, FSTK_MAX_K). Asynchronous on `stream`; returns the launch status.
//     The logits are read from global memory exactly once; only idx and probs are written, plus, when a
//     row is split across several blocks (few rows, long V), a workspace of splits * (8 K + 8) bytes per row.
//     That workspace is one grow-only buffer per device owned by the library: calls on different streams
//     must not overlap. Use launch_fused_softmax_topk_ex with your own workspace to run concurrently.
//
//   int    fused_softmax_topk_choose_splits(int rows, int V, int K);        // blocks per row the launcher uses
//   size_t fused_softmax_topk_workspace_size(int rows, int K, int splits);   // bytes, 0 when splits == 1
//   cudaError_t launch_fused_softmax_topk_ex(const float* logits, int* idx, float* probs, int rows, int V,
//                                            int K, int splits, void* workspace, size_t workspace_bytes,
//                                            cudaStream_t stream);           // splits <= 0: choose
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#define FSTK_MAX_K 256

#ifdef __cplusplus
extern "C" {
#endif

cudaError_t launch_fused_softmax_topk(const float* logits, int* idx, float* probs, int B, int T, int V, int K,
                                      cudaStream_t stream);

int fused_softmax_topk_choose_splits(int rows, int V, int K);

size_t fused_softmax_topk_workspace_size(int rows, int K, int splits);

cudaError_t launch_fused_softmax_topk_ex(const float* logits, int* idx, float* probs, int rows, int V, int K,
                                         int splits, void* workspace, size_t workspace_bytes,
                                         cudaStream_t stream);

#ifdef __cplusplus
}
#endif
