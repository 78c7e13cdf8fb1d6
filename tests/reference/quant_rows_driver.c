/* Quantize float32 rows with llama.cpp's own ggml (ggml_quantize_chunk), without or with
 * importance weights (N_PER_ROW float32 column weights, as llama-quantize passes an imatrix entry).
 * Built and run by gen_quant_row_goldens.py:
 *   quant_rows_driver TYPE_ID N_PER_ROW [WEIGHTS.f32] < rows.f32 > blocks.bin
 * Links the ggml-base library of a llama.cpp build of the sources vendored in
 * llama-cpp-python 0.3.36. */
#include <stdio.h>
#include <stdlib.h>

#include "ggml.h"

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: %s TYPE_ID N_PER_ROW [WEIGHTS.f32] < rows.f32 > blocks.bin\n", argv[0]);
    return 2;
  }
  const enum ggml_type type = (enum ggml_type)atoi(argv[1]);
  const long n_per_row = atol(argv[2]);
  size_t cap = 1 << 20, n = 0;
  float* src = malloc(cap * sizeof(float));
  size_t got;
  while ((got = fread(src + n, sizeof(float), cap - n, stdin)) > 0) {
    n += got;
    if (n == cap) src = realloc(src, (cap *= 2) * sizeof(float));
  }
  if (n_per_row <= 0 || n % (size_t)n_per_row) {
    fprintf(stderr, "input is not whole rows\n");
    return 1;
  }
  const long nrows = (long)(n / (size_t)n_per_row);
  float* weights = NULL;
  if (argc == 4) {
    FILE* wf = fopen(argv[3], "rb");
    weights = malloc((size_t)n_per_row * sizeof(float));
    if (!wf || fread(weights, sizeof(float), (size_t)n_per_row, wf) != (size_t)n_per_row) {
      fprintf(stderr, "cannot read %ld weights from %s\n", n_per_row, argv[3]);
      return 1;
    }
    fclose(wf);
  }
  const size_t row_size = ggml_row_size(type, n_per_row);
  void* dst = calloc((size_t)nrows, row_size);
  const size_t wrote = ggml_quantize_chunk(type, src, dst, 0, nrows, n_per_row, weights);
  if (wrote != (size_t)nrows * row_size) {
    fprintf(stderr, "unexpected size\n");
    return 1;
  }
  fwrite(dst, 1, wrote, stdout);
  return 0;
}
