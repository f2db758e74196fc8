// The benchmark bot for Go telebot v3 (bench/README.md): the same logic as
// tghost.lua and grammy.js. Set by bench/peerbench:
//
//	BOT_TOKEN, API_ROOT             the fake server
//	BENCH_MODE         echo | seq   seq: one update at a time per chat, in order
//	BENCH_CONCURRENCY               updates in flight at most
//
// telebot runs every handler in a goroutine of its own with no limit and no
// per-chat order; the runners it is compared with have both, so this bot
// adds them as a telebot user would: handlers run synchronously, each
// takes a slot of a semaphore (a full one stops the poller: backpressure)
// and hands its work to a goroutine; in seq mode that goroutine first waits
// for the previous update of its chat.
package main

import (
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	tele "gopkg.in/telebot.v3"
)

func main() {
	concurrency, err := strconv.Atoi(os.Getenv("BENCH_CONCURRENCY"))
	if err != nil || concurrency < 1 {
		concurrency = 500
	}
	seq := os.Getenv("BENCH_MODE") == "seq"

	// telebot's own client (http.Client{Timeout: time.Minute} on Go's
	// default transport) keeps 2 idle connections per host: a call made
	// while more are in flight opens a connection and closes it after.
	// BENCH_GO_POOL=1 keeps one per call in flight instead, as Node's
	// keep-alive agent and curl's pool do.
	client := &http.Client{Timeout: time.Minute}
	if os.Getenv("BENCH_GO_POOL") == "1" {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.MaxIdleConns = concurrency + 16
		transport.MaxIdleConnsPerHost = concurrency + 16
		client.Transport = transport
	}

	b, err := tele.NewBot(tele.Settings{
		URL:         os.Getenv("API_ROOT"),
		Token:       os.Getenv("BOT_TOKEN"),
		Poller:      &tele.LongPoller{Timeout: 30 * time.Second, Limit: 100},
		Synchronous: true,
		Client:      client,
		OnError:     func(err error, c tele.Context) { log.Println("handler error:", err) },
	})
	if err != nil {
		log.Fatal(err)
	}

	slots := make(chan struct{}, concurrency)
	var mu sync.Mutex
	tails := map[int64]chan struct{}{} // per chat: done when its latest update is

	b.Handle(tele.OnText, func(c tele.Context) error {
		slots <- struct{}{}
		var prev, done chan struct{}
		chat := c.Chat().ID
		if seq {
			done = make(chan struct{})
			mu.Lock()
			prev = tails[chat]
			tails[chat] = done
			mu.Unlock()
		}
		go func() {
			defer func() { <-slots }()
			if prev != nil {
				<-prev
			}
			if err := c.Send(c.Text()); err != nil {
				log.Println("send:", err)
			}
			if seq {
				mu.Lock()
				if tails[chat] == done {
					delete(tails, chat)
				}
				mu.Unlock()
				close(done)
			}
		}()
		return nil
	})

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		os.Exit(0)
	}()
	b.Start()
}
