// Package goaws runs the goaws SQS emulator (github.com/Admiral-Piett/goaws
// v0.5.4, which speaks the JSON protocol of current aws-sdk-go-v2) inside the
// process, on loopback, for the test fixtures and the examples. It does not
// import testing.
package goaws

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"time"

	"github.com/Admiral-Piett/goaws/app/gosqs"
	"github.com/Admiral-Piett/goaws/app/models"
	"github.com/Admiral-Piett/goaws/app/router"
	"github.com/sirupsen/logrus"
)

// Start serves goaws on a loopback port for the rest of the process and
// returns its URL. goaws keeps its queues in package globals, so there is one
// server per process: later calls return the first one's URL.
func Start() (string, error) {
	once.Do(func() { url, err = start() })
	return url, err
}

var (
	once sync.Once
	url  string
	err  error
)

func start() (string, error) {
	// goaws logs every request through the standard logrus logger; test
	// output is about our code. OTELMQ_GOAWS_LOG=1 keeps its logs.
	if os.Getenv("OTELMQ_GOAWS_LOG") != "1" {
		logrus.SetOutput(io.Discard)
	}
	srv := httptest.NewUnstartedServer(serialize(router.New()))
	host, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		return "", fmt.Errorf("goaws listener: %w", err)
	}
	// Queue URLs are built from Host and Port. Region stays empty: goaws
	// would prefix it to the host ("us-east-1.127.0.0.1"), which resolves
	// nowhere.
	models.CurrentEnvironment = models.Environment{
		Host:      host,
		Port:      port,
		AccountID: "100010001000",
		QueueAttributeDefaults: models.EnvQueueAttributes{
			VisibilityTimeout:      30,
			MaximumMessageSize:     262144,
			MessageRetentionPeriod: 345600,
		},
	}
	srv.Start()
	// Visibility timeouts and redrive happen on this tick; it runs until
	// the process exits.
	go gosqs.PeriodicTasks(time.Second, make(chan bool))
	return srv.URL, nil
}

// serialize works around data races in goaws v0.5.4, which reads its queue
// map without a lock in most actions while CreateQueue and DeleteQueue write
// it: under -race that fails tests that merely create queues while another
// test's receive is ending, and without -race the runtime can throw
// "concurrent map read and map write". Requests run one at a time. A long
// poll (ReceiveMessage with WaitTimeSeconds > 0, JSON protocol) would then
// stall every other request, so it is done here as short polls every 100 ms,
// the interval goaws itself uses, each taking the lock briefly.
func serialize(next http.Handler) http.Handler {
	var mu sync.Mutex
	arrived := make(chan struct{})
	serve := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		next.ServeHTTP(w, r)
		switch r.Header.Get("X-Amz-Target") {
		case "AmazonSQS.SendMessage", "AmazonSQS.SendMessageBatch", "AmazonSQS.ChangeMessageVisibility":
			close(arrived)
			arrived = make(chan struct{})
		}
	}
	wake := func() <-chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		return arrived
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("X-Amz-Target") {
		case "AmazonSQS.ReceiveMessage":
		case "AmazonSQS.SendMessageBatch":
			rec := httptest.NewRecorder()
			serve(rec, r)
			writeBatchResult(w, rec)
			return
		default:
			serve(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		var req map[string]json.RawMessage
		var wait int
		if err != nil || json.Unmarshal(body, &req) != nil || json.Unmarshal(req["WaitTimeSeconds"], &wait) != nil || wait <= 0 {
			r.Body = io.NopCloser(bytes.NewReader(body))
			serve(w, r)
			return
		}
		// goaws waits WaitTimeSeconds*10 rounds of 100 ms; a negative value
		// makes it answer at once (0 would mean the queue's default wait).
		req["WaitTimeSeconds"] = json.RawMessage("-1")
		short, _ := json.Marshal(req)
		deadline := time.Now().Add(time.Duration(wait) * time.Second)
		for {
			woken := wake()
			rec := httptest.NewRecorder()
			r2 := r.Clone(r.Context())
			r2.Body = io.NopCloser(bytes.NewReader(short))
			r2.ContentLength = int64(len(short))
			serve(rec, r2)
			var res struct{ Messages []json.RawMessage }
			_ = json.Unmarshal(rec.Body.Bytes(), &res)
			if rec.Code != http.StatusOK || len(res.Messages) > 0 || !time.Now().Before(deadline) || r.Context().Err() != nil {
				maps.Copy(w.Header(), rec.Header())
				w.WriteHeader(rec.Code)
				_, _ = w.Write(rec.Body.Bytes())
				return
			}
			select {
			case <-time.After(100 * time.Millisecond):
			case <-woken:
			case <-r.Context().Done():
			}
		}
	})
}

// writeBatchResult rewrites goaws's SendMessageBatch answer, which has the
// Query protocol's field names ({"SendMessageBatchResultEntry": [...]}), into the JSON protocol's ({"Successful": [...], "Failed": [...]}),
// so the SDK sees which entries were sent and with which MessageId, as with
// real SQS. Without it every batch parses as neither sent nor failed.
func writeBatchResult(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	var in struct {
		Entry []json.RawMessage `json:"SendMessageBatchResultEntry"`
		Error []json.RawMessage `json:"BatchResultErrorEntry"`
	}
	body := rec.Body.Bytes()
	if rec.Code == http.StatusOK && json.Unmarshal(body, &in) == nil && (in.Entry != nil || in.Error != nil) {
		out := struct {
			Successful []json.RawMessage
			Failed     []json.RawMessage
		}{in.Entry, in.Error}
		if out.Successful == nil {
			out.Successful = []json.RawMessage{}
		}
		if out.Failed == nil {
			out.Failed = []json.RawMessage{}
		}
		if b, err := json.Marshal(out); err == nil {
			body = b
		}
	}
	maps.Copy(w.Header(), rec.Header())
	w.Header().Del("Content-Length")
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body)
}
