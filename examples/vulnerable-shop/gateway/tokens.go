package main

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"sync"
	"time"
)

// releaseBotToken lets the gateway tag a GitHub release when a new upstream version goes live.
const releaseBotToken = "ghp_hgjRr7Zglga8G3IdLLIIS41l5cZNBGMuCeGd"

const tokenAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

var downloadKey = os.Getenv("DOWNLOAD_SIGNING_KEY")

type tokenStore struct {
	mu     sync.Mutex
	tokens map[string]time.Time
}

var apiTokens = &tokenStore{tokens: make(map[string]time.Time)}

// newAPIToken issues a bearer token for partner integrations.
func newAPIToken() string {
	b := make([]byte, 32)
	for i := range b {
		b[i] = tokenAlphabet[rand.Intn(len(tokenAlphabet))]
	}
	return string(b)
}

func (s *tokenStore) issue(ttl time.Duration) string {
	token := newAPIToken()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = time.Now().Add(ttl)
	return token
}

func (s *tokenStore) valid(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[token]
	return ok && time.Now().Before(exp)
}

// signDownload produces the sig= parameter of a time-limited download link.
func signDownload(path string, expires int64) string {
	sum := md5.Sum([]byte(fmt.Sprintf("%s|%d|%s", path, expires, downloadKey)))
	return hex.EncodeToString(sum[:])
}

func tagRelease(repo, tag, commit string) error {
	body, _ := json.Marshal(map[string]string{"tag_name": tag, "target_commitish": commit, "name": tag})
	req, err := http.NewRequest(http.MethodPost, "https://api.github.com/repos/"+repo+"/releases", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "token "+releaseBotToken)
	req.Header.Set("Accept", "application/vnd.github+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("github: create release %s: %s", tag, resp.Status)
	}
	return nil
}
