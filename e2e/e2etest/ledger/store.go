package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Store is the fenced store: per fleet and token space it keeps the highest
// token accepted, refuses writes below it, and records everything. The zero
// value is not usable; call NewStore.
type Store struct {
	mu      sync.Mutex
	fleets  map[string]*fleetState
	changed chan struct{} // closed and replaced on every change
}

type fleetState struct {
	highest map[string]uint64 // per token space
	hist    History
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{fleets: map[string]*fleetState{}, changed: make(chan struct{})}
}

func (s *Store) fleet(name string) *fleetState {
	f := s.fleets[name]
	if f == nil {
		f = &fleetState{highest: map[string]uint64{}, hist: History{Fleet: name}}
		s.fleets[name] = f
	}
	return f
}

// notify wakes every Wait. Called with mu held.
func (s *Store) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Apply decides a write: accepted if its token is at least the highest
// accepted so far in its fleet and space. Equal tokens are accepted because
// one term writes many times under one token.
func (s *Store) Apply(w Write) (Result, error) {
	if err := w.Validate(); err != nil {
		return Result{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fleet(w.Fleet)
	hi := f.highest[w.Space]
	r := Result{At: Now()}
	if w.Token >= hi {
		r.Accepted = true
		f.highest[w.Space] = w.Token
		hi = w.Token
	}
	r.Highest = hi
	f.hist.Records = append(f.hist.Records, Record{Write: w, Result: r})
	s.notify()
	return r, nil
}

// AddEvent records a candidate's event.
func (s *Store) AddEvent(e Event) error {
	if err := e.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fleet(e.Fleet)
	f.hist.Events = append(f.hist.Events, e)
	s.notify()
	return nil
}

// AddFault records a fault the runner injected.
func (s *Store) AddFault(ft Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fleet(ft.Fleet)
	f.hist.Faults = append(f.hist.Faults, ft)
	s.notify()
}

// AddFreeze records that the runner stopped a process (SIGSTOP) at from.
func (s *Store) AddFreeze(fz Freeze) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fleet(fz.Fleet)
	f.hist.Freezes = append(f.hist.Freezes, fz)
	s.notify()
}

// Thaw records that the runner let the process pid of fleet continue
// (SIGCONT) at to: it ends that process's open freeze, if any.
func (s *Store) Thaw(fleet string, pid int, to Mono) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fleet(fleet)
	for i := len(f.hist.Freezes) - 1; i >= 0; i-- {
		if fz := &f.hist.Freezes[i]; fz.PID == pid && fz.To == 0 {
			fz.To = to
			break
		}
	}
	s.notify()
}

// Bound sets the scenario window of a fleet's history.
func (s *Store) Bound(fleet string, start, end Mono) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fleet(fleet)
	f.hist.Start, f.hist.End = start, end
}

// History returns a copy of a fleet's history.
func (s *Store) History(fleet string) History {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fleets[fleet]
	if f == nil {
		return History{Fleet: fleet}
	}
	h := f.hist
	h.Records = append([]Record(nil), h.Records...)
	h.Events = append([]Event(nil), h.Events...)
	h.Faults = append([]Fault(nil), h.Faults...)
	h.Freezes = append([]Freeze(nil), h.Freezes...)
	return h
}

// View is what a Wait condition sees: a fleet's history, read-only, under
// the store's lock.
type View struct {
	f *fleetState
}

// Records returns the fleet's records; the caller must not keep or change
// the slice.
func (v View) Records() []Record {
	if v.f == nil {
		return nil
	}
	return v.f.hist.Records
}

// Events returns the fleet's events; the caller must not keep or change the
// slice.
func (v View) Events() []Event {
	if v.f == nil {
		return nil
	}
	return v.f.hist.Events
}

// LastAccepted returns the most recent accepted write.
func (v View) LastAccepted() (Record, bool) {
	rs := v.Records()
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].Accepted {
			return rs[i], true
		}
	}
	return Record{}, false
}

// Wait blocks until cond holds for the fleet's history or ctx is done. cond
// runs under the store's lock, so it must be quick and must not call the
// store.
func (s *Store) Wait(ctx context.Context, fleet string, cond func(View) bool) error {
	for {
		s.mu.Lock()
		ok := cond(View{f: s.fleets[fleet]})
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// maxBody bounds a request: a write or an event is a few hundred bytes.
const maxBody = 64 << 10

// Handler serves the store over HTTP: POST /write with a Write answers a
// Result (200 whether accepted or refused: a refusal is the store working);
// POST /event with an Event answers 204. A malformed request gets 400 with
// what is wrong.
func (s *Store) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /write", func(w http.ResponseWriter, r *http.Request) {
		var wr Write
		if err := decode(r, &wr); err != nil {
			http.Error(w, "ledger: bad write: "+err.Error(), http.StatusBadRequest)
			return
		}
		res, err := s.Apply(wr)
		if err != nil {
			http.Error(w, "ledger: bad write: "+err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(res)
	})
	mux.HandleFunc("POST /event", func(w http.ResponseWriter, r *http.Request) {
		var ev Event
		if err := decode(r, &ev); err != nil {
			http.Error(w, "ledger: bad event: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := s.AddEvent(ev); err != nil {
			http.Error(w, "ledger: bad event: "+err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("want a JSON object: %w", err)
	}
	return nil
}

// Server is a Store served on 127.0.0.1.
type Server struct {
	*Store
	srv *http.Server
	ln  net.Listener
}

// Serve serves a new Store on 127.0.0.1 (a free port) until Close.
func Serve() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("ledger: listen: %w", err)
	}
	s := &Server{Store: NewStore(), ln: ln}
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	// Serve returns only when closed or when the listener breaks; in the
	// latter case candidates see connection errors and log them.
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the server's host:port, for candidates' -ledger flag.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops serving.
func (s *Server) Close() error { return s.srv.Close() }
