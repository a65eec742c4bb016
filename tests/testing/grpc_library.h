// Included by a test binary that runs gRPC servers: holds one process-wide
// gRPC library reference for the binary's whole life. Without it gRPC 1.51
// can hang about 10 s in ~Server() when that drops the last reference
// (toolchain notes: 0 slow runs in 250 with it).
#ifndef QFP_TESTS_TESTING_GRPC_LIBRARY_H_
#define QFP_TESTS_TESTING_GRPC_LIBRARY_H_

#include "grpc/grpc.h"
#include "gtest/gtest.h"

namespace qfp::testing {

class GrpcLibraryEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { grpc_init(); }
};

// Registered once per binary (an inline variable), whoever includes this.
inline ::testing::Environment* const kGrpcLibraryEnvironment =
    ::testing::AddGlobalTestEnvironment(new GrpcLibraryEnvironment);

}  // namespace qfp::testing

#endif  // QFP_TESTS_TESTING_GRPC_LIBRARY_H_
