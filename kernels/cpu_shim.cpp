// recperf CPU runner: the kernel sources compiled for the host (see cpu_shim.h), with C entry
// points that run one launch, every block and every thread, and report the first
// out-of-range index position. Built once per configuration by kernels/_cpu.py (g++ -shared)
// and loaded with ctypes.
#include "cpu_shim.h"
#include "embedding_bag_aux.cu"
#include "embedding_bag_pytorch.cu"
#include "embedding_bag_warp.cu"

namespace {

// Run body() for every thread of a (grid.x) x (block.x, block.y) launch. A thread that fails an
// index check stops there (before its read); the smallest failing position is recorded. Returns
// 0, or 1 after a failed non-index assert (its condition in *failed_condition).
template <typename Body>
int recperf_cpu_launch(unsigned grid_x, unsigned block_x, unsigned block_y, long long* first_bad,
                       const char** failed_condition, Body body) {
  gridDim = dim3{grid_x, 1, 1};
  blockDim = dim3{block_x, block_y, 1};
  int status = 0;
  for (unsigned bx = 0; bx < grid_x; ++bx) {
    blockIdx = dim3{bx, 0, 0};
    for (unsigned ty = 0; ty < block_y; ++ty) {
      for (unsigned tx = 0; tx < block_x; ++tx) {
        threadIdx = dim3{tx, ty, 0};
        try {
          body();
        } catch (const recperf_index_fault& f) {
          if (*first_bad < 0 || f.position < *first_bad) *first_bad = f.position;
        } catch (const recperf_assert_fault& f) {
          *failed_condition = f.condition;
          status = 1;
        }
      }
    }
  }
  return status;
}

}  // namespace

extern "C" {

int recperf_cpu_pytorch(unsigned grid_x, unsigned block_x, unsigned block_y, const index_t* input,
                        const index_t* offsets, const scalar_t* weight, scalar_t* output, index_t* offset2bag,
                        long long numIndices, long long numBags, long long featureSize, long long weight_stride0,
                        long long weight_stride1, int mode, index_t* bag_size, const scalar_t* per_sample_weights,
                        long long per_sample_weights_stride, long long padding_idx, long long numRows,
                        int l2_prefetch_distance, long long* first_bad, const char** failed_condition) {
  return recperf_cpu_launch(grid_x, block_x, block_y, first_bad, failed_condition, [&]() {
    recperf_embedding_bag_pytorch(input, offsets, weight, output, offset2bag, numIndices, numBags, featureSize,
                                  weight_stride0, weight_stride1, mode, bag_size, per_sample_weights,
                                  per_sample_weights_stride, (index_t)padding_idx, numRows, l2_prefetch_distance);
  });
}

int recperf_cpu_warp(unsigned grid_x, unsigned block_x, const index_t* input, const index_t* offsets,
                     const scalar_t* weight, scalar_t* output, long long numIndices, long long numBags,
                     long long featureSize, int mode, const scalar_t* per_sample_weights, long long numRows,
                     int l2_prefetch_distance, long long* first_bad, const char** failed_condition) {
  return recperf_cpu_launch(grid_x, block_x, 1, first_bad, failed_condition, [&]() {
    recperf_embedding_bag_warp(input, offsets, weight, output, numIndices, numBags, featureSize, mode,
                               per_sample_weights, numRows, l2_prefetch_distance);
  });
}

int recperf_cpu_check_indices(unsigned grid_x, unsigned block_x, const index_t* input, long long numIndices,
                              long long numRows, unsigned long long* first_bad) {
  long long unused = -1;
  const char* cond = nullptr;
  return recperf_cpu_launch(grid_x, block_x, 1, &unused, &cond, [&]() {
    recperf_check_indices(input, numIndices, numRows, first_bad);
  });
}

int recperf_cpu_remap_indices(unsigned grid_x, unsigned block_x, const index_t* input, index_t* out,
                              long long numIndices, const index_t* row_map, long long numRows) {
  long long unused = -1;
  const char* cond = nullptr;
  return recperf_cpu_launch(grid_x, block_x, 1, &unused, &cond, [&]() {
    recperf_remap_indices(input, out, numIndices, row_map, numRows);
  });
}

int recperf_cpu_pin_rows(unsigned grid_x, unsigned block_x, const char* weight, const index_t* hot_rows,
                         long long numHot, long long rowBytes) {
  long long unused = -1;
  const char* cond = nullptr;
  return recperf_cpu_launch(grid_x, block_x, 1, &unused, &cond, [&]() {
    recperf_pin_rows_evict_last(weight, hot_rows, numHot, rowBytes);
  });
}

}  // extern "C"
