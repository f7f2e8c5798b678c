#include "agent/http/snapshot_page.h"

#include "agent/http/gzip.h"

namespace kvmprof {

HttpResponse SnapshotPage::serve(const HttpRequest& request) {
  auto snapshot = store_.latest();
  if (!snapshot) return text_response(503, "no collection has finished yet; try again in a moment\n");
  std::lock_guard lock(mu_);
  if (snapshot != rendered_) {
    text_ = std::make_shared<const std::string>(render_(*snapshot));
    gzip_.reset();
    rendered_ = snapshot;
  }
  if (!request.accepts_gzip) return HttpResponse{200, content_type_, text_, false, {}};
  if (!gzip_) gzip_ = std::make_shared<const std::string>(gzip(*text_));
  return HttpResponse{200, content_type_, gzip_, true, {}};
}

}  // namespace kvmprof
