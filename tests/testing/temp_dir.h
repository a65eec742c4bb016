// A temporary directory removed with everything in it when the object dies.
#ifndef QFP_TESTS_TESTING_TEMP_DIR_H_
#define QFP_TESTS_TESTING_TEMP_DIR_H_

#include <string>

namespace qfp::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path()/name
  std::string File(const std::string& name) const;
  // Writes `contents` to path()/name and returns the full path.
  std::string Write(const std::string& name, const std::string& contents) const;

 private:
  std::string path_;
};

}  // namespace qfp::testing

#endif  // QFP_TESTS_TESTING_TEMP_DIR_H_
