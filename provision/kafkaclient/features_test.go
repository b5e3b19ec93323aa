package kafkaclient

import "testing"

// TestMetadataVersion reads the real broker's metadata.version: a fresh
// 4.0.0 broker is finalized at 4.0-IV3, the newest it supports.
func TestMetadataVersion(t *testing.T) {
	c, ctx := dial(t)
	mv, err := c.MetadataVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("finalized %s, supported %v", MetadataVersionName(mv.Finalized), mv.Supported)
	if len(mv.Supported) != 1 || mv.Newest() != 25 || mv.Finalized != 25 || MetadataVersionName(25) != "4.0-IV3" {
		t.Errorf("metadata.version %+v, want finalized and supported at 25 (4.0-IV3) on one broker", mv)
	}
	// Finalizing at the level it has already is accepted and changes nothing.
	if err := c.FinalizeMetadataVersion(ctx, mv.Finalized); err != nil {
		t.Errorf("finalize at the current level: %v", err)
	}
}
