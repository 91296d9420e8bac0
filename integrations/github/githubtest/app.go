package githubtest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SetAppKey registers GitHub App appID with the public half of its private
// key. POST /app/installations/{id}/access_tokens then accepts a JWT signed
// with that key (RS256, iss = appID, unexpired by the wall clock) and issues
// an installation token that every other endpoint accepts for an hour.
// With installationIDs, only those installations exist; without, any.
// Like SetToken, it turns authentication on.
func (s *Server) SetAppKey(appID int64, key *rsa.PublicKey, installationIDs ...int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := &app{key: key, installations: map[int64]bool{}}
	for _, id := range installationIDs {
		a.installations[id] = true
	}
	s.apps[appID] = a
	s.authOn = true
}

// InstallationTokens is how many installation tokens have been issued,
// to check that a client reuses its token.
func (s *Server) InstallationTokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.issued)
}

func jwtError(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusUnauthorized, map[string]any{
		"message":           msg,
		"documentation_url": "https://docs.github.com/rest",
	})
}

func (s *Server) accessToken(w http.ResponseWriter, req *http.Request) {
	appID, err := s.verifyJWT(credential(req))
	if err != nil {
		jwtError(w, err.Error())
		return
	}
	inst, _ := strconv.ParseInt(req.PathValue("id"), 10, 64)
	a := s.apps[appID]
	if len(a.installations) > 0 && !a.installations[inst] {
		notFound(w)
		return
	}
	buf := make([]byte, 27)
	_, _ = rand.Read(buf)
	tok := "ghs_" + strings.NewReplacer("-", "A", "_", "B").Replace(base64.RawURLEncoding.EncodeToString(buf))
	exp := time.Now().Add(time.Hour)
	s.issued[tok] = exp
	writeJSON(w, http.StatusCreated, map[string]any{
		"token":                tok,
		"expires_at":           exp.UTC().Truncate(time.Second).Format(time.RFC3339),
		"permissions":          map[string]string{"actions": "write", "contents": "write", "pull_requests": "write", "metadata": "read"},
		"repository_selection": "all",
	})
}

// verifyJWT checks an App JWT the way GitHub does and returns its app id.
// Its error messages are GitHub's.
func (s *Server) verifyJWT(tok string) (int64, error) {
	undecodable := errors.New("A JSON web token could not be decoded")
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return 0, undecodable
	}
	var header struct {
		Alg string `json:"alg"`
	}
	var claims struct {
		Iss json.RawMessage `json:"iss"`
		Iat *float64        `json:"iat"`
		Exp *float64        `json:"exp"`
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil ||
		json.Unmarshal(hb, &header) != nil || json.Unmarshal(cb, &claims) != nil || header.Alg != "RS256" {
		return 0, undecodable
	}
	issStr := strings.Trim(string(claims.Iss), `"`)
	appID, err := strconv.ParseInt(issStr, 10, 64)
	if err != nil {
		return 0, errors.New("'Issuer' claim ('iss') must be an Integer")
	}
	a, ok := s.apps[appID]
	if !ok {
		return 0, errors.New("Integration not found")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(a.key, crypto.SHA256, digest[:], sig) != nil {
		return 0, undecodable
	}
	now := time.Now()
	if claims.Exp == nil || claims.Iat == nil {
		return 0, errors.New("Missing 'issued at' or 'expiration time' claim")
	}
	exp := time.Unix(int64(*claims.Exp), 0)
	iat := time.Unix(int64(*claims.Iat), 0)
	switch {
	case !exp.After(now):
		return 0, errors.New("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires")
	case exp.Sub(now) > 10*time.Minute:
		return 0, errors.New("'Expiration time' claim ('exp') is too far in the future")
	case iat.After(now.Add(time.Minute)):
		return 0, errors.New("'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued")
	}
	return appID, nil
}
