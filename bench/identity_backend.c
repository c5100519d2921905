/*
 * A minimal Triton backend for easnb's benchmarks: every input INPUTn comes back as OUTPUTn,
 * bytes for bytes, so the server costs next to nothing and the clients' costs show.
 *
 * Written against Triton's documented backend API (TRITONBACKEND_*, TRITONSERVER_*), declaring
 * only the few functions it calls. Built by bench/triton.py with the system compiler:
 *   cc -O2 -shared -fPIC identity_backend.c -o libtriton_easnb_identity.so
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct TRITONSERVER_Error TRITONSERVER_Error;
typedef struct TRITONBACKEND_Request TRITONBACKEND_Request;
typedef struct TRITONBACKEND_Response TRITONBACKEND_Response;
typedef struct TRITONBACKEND_Input TRITONBACKEND_Input;
typedef struct TRITONBACKEND_Output TRITONBACKEND_Output;
typedef struct TRITONBACKEND_ModelInstance TRITONBACKEND_ModelInstance;
typedef int TRITONSERVER_DataType;   /* an enum in the API */
typedef int TRITONSERVER_MemoryType; /* TRITONSERVER_MEMORY_CPU is 0 */
typedef int TRITONSERVER_Error_Code; /* TRITONSERVER_ERROR_INTERNAL is 2 */

enum { MEMORY_CPU = 0, RESPONSE_COMPLETE_FINAL = 1, REQUEST_RELEASE_ALL = 1, ERROR_INTERNAL = 2 };

extern TRITONSERVER_Error* TRITONSERVER_ErrorNew(TRITONSERVER_Error_Code code, const char* msg);
extern TRITONSERVER_Error* TRITONBACKEND_RequestInputCount(TRITONBACKEND_Request* request, uint32_t* count);
extern TRITONSERVER_Error* TRITONBACKEND_RequestInputByIndex(
    TRITONBACKEND_Request* request, const uint32_t index, TRITONBACKEND_Input** input);
extern TRITONSERVER_Error* TRITONBACKEND_InputProperties(
    TRITONBACKEND_Input* input, const char** name, TRITONSERVER_DataType* datatype, const int64_t** shape,
    uint32_t* dims_count, uint64_t* byte_size, uint32_t* buffer_count);
extern TRITONSERVER_Error* TRITONBACKEND_InputBuffer(
    TRITONBACKEND_Input* input, const uint32_t index, const void** buffer, uint64_t* buffer_byte_size,
    TRITONSERVER_MemoryType* memory_type, int64_t* memory_type_id);
extern TRITONSERVER_Error* TRITONBACKEND_ResponseNew(TRITONBACKEND_Response** response, TRITONBACKEND_Request* request);
extern TRITONSERVER_Error* TRITONBACKEND_ResponseOutput(
    TRITONBACKEND_Response* response, TRITONBACKEND_Output** output, const char* name,
    const TRITONSERVER_DataType datatype, const int64_t* shape, const uint32_t dims_count);
extern TRITONSERVER_Error* TRITONBACKEND_OutputBuffer(
    TRITONBACKEND_Output* output, void** buffer, const uint64_t buffer_byte_size,
    TRITONSERVER_MemoryType* memory_type, int64_t* memory_type_id);
extern TRITONSERVER_Error* TRITONBACKEND_ResponseSend(
    TRITONBACKEND_Response* response, const uint32_t send_flags, TRITONSERVER_Error* error);
extern TRITONSERVER_Error* TRITONBACKEND_RequestRelease(TRITONBACKEND_Request* request, uint32_t release_flags);

/* Copy every input of one request into the output of the same number. */
static TRITONSERVER_Error* echo(TRITONBACKEND_Request* request, TRITONBACKEND_Response* response) {
  uint32_t count = 0;
  TRITONSERVER_Error* err = TRITONBACKEND_RequestInputCount(request, &count);
  for (uint32_t i = 0; err == NULL && i < count; ++i) {
    TRITONBACKEND_Input* input;
    const char* name;
    TRITONSERVER_DataType datatype;
    const int64_t* shape;
    uint32_t dims = 0, buffers = 0;
    uint64_t size = 0;
    if ((err = TRITONBACKEND_RequestInputByIndex(request, i, &input)) != NULL) break;
    if ((err = TRITONBACKEND_InputProperties(input, &name, &datatype, &shape, &dims, &size, &buffers)) != NULL) break;
    char out_name[256];
    if (strncmp(name, "INPUT", 5) != 0 || snprintf(out_name, sizeof out_name, "OUTPUT%s", name + 5) >= (int)sizeof out_name) {
      return TRITONSERVER_ErrorNew(ERROR_INTERNAL, "inputs must be named INPUTn");
    }
    TRITONBACKEND_Output* output;
    if ((err = TRITONBACKEND_ResponseOutput(response, &output, out_name, datatype, shape, dims)) != NULL) break;
    void* target;
    TRITONSERVER_MemoryType memory = MEMORY_CPU;
    int64_t memory_id = 0;
    if ((err = TRITONBACKEND_OutputBuffer(output, &target, size, &memory, &memory_id)) != NULL) break;
    if (memory != MEMORY_CPU) return TRITONSERVER_ErrorNew(ERROR_INTERNAL, "output buffer is not CPU memory");
    uint64_t offset = 0;
    for (uint32_t b = 0; b < buffers; ++b) {
      const void* source;
      uint64_t length = 0;
      TRITONSERVER_MemoryType in_memory = MEMORY_CPU;
      int64_t in_id = 0;
      if ((err = TRITONBACKEND_InputBuffer(input, b, &source, &length, &in_memory, &in_id)) != NULL) break;
      if (offset + length > size) return TRITONSERVER_ErrorNew(ERROR_INTERNAL, "input buffers exceed the input");
      memcpy((char*)target + offset, source, length);
      offset += length;
    }
  }
  return err;
}

TRITONSERVER_Error* TRITONBACKEND_ModelInstanceExecute(
    TRITONBACKEND_ModelInstance* instance, TRITONBACKEND_Request** requests, const uint32_t request_count) {
  (void)instance;
  for (uint32_t r = 0; r < request_count; ++r) {
    TRITONBACKEND_Response* response;
    TRITONSERVER_Error* err = TRITONBACKEND_ResponseNew(&response, requests[r]);
    if (err == NULL) {
      TRITONBACKEND_ResponseSend(response, RESPONSE_COMPLETE_FINAL, echo(requests[r], response));
    }
    TRITONBACKEND_RequestRelease(requests[r], REQUEST_RELEASE_ALL);
  }
  return NULL;
}
