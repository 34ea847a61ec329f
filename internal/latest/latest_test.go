package latest

import "testing"

func TestValue(t *testing.T) {
	v := New(0, func(a, b int) bool { return a == b })
	if got, set := v.Get(); got != 0 || set {
		t.Fatalf("initial: %d, %v", got, set)
	}
	if !v.Set(0) {
		t.Fatal("the first Set changed nothing")
	}
	<-v.Changes()
	if v.Set(0) {
		t.Fatal("an equal Set counted as a change")
	}
	select {
	case <-v.Changes():
		t.Fatal("an equal Set signalled")
	default:
	}
	v.Set(1)
	v.Set(2) // coalesced with the previous signal
	<-v.Changes()
	select {
	case <-v.Changes():
		t.Fatal("two changes signalled twice")
	default:
	}
	if got, set := v.Get(); got != 2 || !set {
		t.Fatalf("got %d, %v", got, set)
	}
}
