package record

import "github.com/ronda-jakarta/ronda/node/media"

// Gap reasons: every hole in a camera's recordings says why it is there.
// The codes are stable (the API, the hub's coverage and dashboards use them);
// a gap's Detail says what exactly happened.
const (
	ReasonCameraOffline = media.StopCameraOffline // the camera was unreachable or refused the node
	ReasonNetwork       = media.StopNetwork       // the camera's stream broke while flowing
	ReasonNodeDown      = media.StopNodeDown      // the node was stopped or crashed
	ReasonDiskFull      = "disk_full"             // no space left for segments
	ReasonWriteFailed   = "write_failed"          // a write or fsync failed (disk error)
	ReasonClockStep     = "clock_step"            // the node's wall clock jumped
	ReasonDeleted       = "deleted"               // recorded, then deleted by retention (max age or disk space)
	ReasonNotRecorded   = "not_recorded"          // nothing was recorded and no event says why
)

const deletedDetail = "recorded, then deleted by retention (older than the camera's max age, or to keep free disk space)"

var knownReasons = []string{ReasonCameraOffline, ReasonNetwork, ReasonNodeDown, ReasonDiskFull,
	ReasonWriteFailed, ReasonClockStep, ReasonDeleted, ReasonNotRecorded}

// splitReason decodes a stored event into a reason code and its detail.
func splitReason(r string) (code, detail string) {
	code, detail = media.SplitReason(r, knownReasons...)
	if code == "" {
		code = ReasonCameraOffline
	}
	return code, detail
}
