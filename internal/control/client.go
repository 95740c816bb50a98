package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
)

// Client talks to a node's control API.
type Client struct {
	addr             string
	network, address string
	hc               *http.Client
}

// NewClient returns a client for the control address addr (see ParseAddr).
func NewClient(addr string) (*Client, error) {
	network, address, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	c := &Client{addr: addr, network: network, address: address}
	c.hc = &http.Client{Transport: &http.Transport{
		DialContext:       c.dial,
		DisableKeepAlives: true,
	}}
	return c, nil
}

func (c *Client) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, c.network, c.address)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("no node is running at %s (start one with `mycelium node`, or point --control or $%s at it)", c.addr, EnvControl)
		}
		return nil, err
	}
	return conn, nil
}

// Status fetches the node's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	if err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Expose starts or stops exposing a service.
func (c *Client) Expose(ctx context.Context, req ExposeRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/expose", req, nil)
}

// Forward starts or stops a forward.
func (c *Client) Forward(ctx context.Context, req ForwardRequest) (ForwardInfo, error) {
	var info ForwardInfo
	err := c.do(ctx, http.MethodPost, "/v1/forward", req, &info)
	return info, err
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://mycelium"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		var uerr interface{ Unwrap() error }
		if errors.As(err, &uerr) {
			err = uerr.Unwrap()
		}
		return err
	}
	defer resp.Body.Close()
	return readAnswer(resp, out)
}

// readAnswer decodes a success into out, or an Error.
func readAnswer(resp *http.Response, out any) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		apiErr := &Error{}
		if json.Unmarshal(b, apiErr) != nil || apiErr.Message == "" {
			return fmt.Errorf("control API answered %s", resp.Status)
		}
		return apiErr
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("control API answer: %w", err)
	}
	return nil
}

// Dial opens a stream through the node. The returned conn carries the
// stream's bytes and supports CloseWrite. Its Read ends with io.EOF when the
// stream ended cleanly and with a *RemoteError when it failed (a reset by
// the service, a lost connection).
func (c *Client) Dial(ctx context.Context, req DialRequest) (net.Conn, error) {
	conn, err := c.dial(ctx, "", "")
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	b, err := json.Marshal(req)
	if err != nil {
		conn.Close()
		return nil, err
	}
	hreq, err := http.NewRequest(http.MethodPost, "http://mycelium/v1/dial", bytes.NewReader(b))
	if err != nil {
		conn.Close()
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Connection", "Upgrade")
	hreq.Header.Set("Upgrade", UpgradeProtocol)
	if err := hreq.Write(conn); err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, hreq)
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("control API: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer conn.Close()
		err := readAnswer(resp, nil)
		if err == nil {
			err = fmt.Errorf("control API answered %s, want 101", resp.Status)
		}
		return nil, err
	}
	return &framedConn{Conn: conn, fr: &frameReader{r: br}}, nil
}
