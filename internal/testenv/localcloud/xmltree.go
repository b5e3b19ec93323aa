package localcloud

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// node is an element of an EC2 query-protocol answer, kept whole so the
// proxy can change a few values and write the rest back as it was.
type node struct {
	name     string // with its prefix, if any ("xmlns" attributes stay attributes)
	attrs    []xml.Attr
	text     string // character data (EC2 answers never mix text and elements)
	children []*node
}

// parseXML reads one document into a tree. The XML declaration is dropped
// (writeXML writes its own).
func parseXML(data []byte) (*node, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	var stack []*node
	var root *node
	for {
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse EC2 answer: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &node{name: rawName(t.Name), attrs: append([]xml.Attr(nil), t.Attr...)}
			if len(stack) > 0 {
				parent := stack[len(stack)-1]
				parent.children = append(parent.children, n)
			} else if root == nil {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			if len(stack) == 0 {
				return nil, errors.New("parse EC2 answer: unbalanced end element")
			}
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(t)
			}
		}
	}
	if root == nil || len(stack) != 0 {
		return nil, errors.New("parse EC2 answer: no complete root element")
	}
	return root, nil
}

func rawName(n xml.Name) string {
	if n.Space != "" {
		return n.Space + ":" + n.Local
	}
	return n.Local
}

// writeXML serializes the tree with an XML declaration, as moto does.
func writeXML(root *node) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	root.write(&b)
	return b.Bytes()
}

func (n *node) write(b *bytes.Buffer) {
	b.WriteString("<" + n.name)
	for _, a := range n.attrs {
		b.WriteString(" " + rawName(a.Name) + `="`)
		_ = xml.EscapeText(b, []byte(a.Value))
		b.WriteString(`"`)
	}
	if len(n.children) == 0 && n.text == "" {
		b.WriteString("/>")
		return
	}
	b.WriteString(">")
	if len(n.children) == 0 {
		_ = xml.EscapeText(b, []byte(n.text))
	}
	for _, c := range n.children {
		c.write(b)
	}
	b.WriteString("</" + n.name + ">")
}

// child returns the first child element named name, or nil.
func (n *node) child(name string) *node {
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

// childText is the text of the first child named name ("" if none).
func (n *node) childText(name string) string {
	if c := n.child(name); c != nil {
		return strings.TrimSpace(c.text)
	}
	return ""
}

// remove drops every child named name.
func (n *node) remove(name string) {
	kept := n.children[:0]
	for _, c := range n.children {
		if c.name != name {
			kept = append(kept, c)
		}
	}
	n.children = kept
}

// walk calls f on n and every element below it, depth first.
func (n *node) walk(f func(*node)) {
	f(n)
	for _, c := range n.children {
		c.walk(f)
	}
}

// instances returns the instance items of a DescribeInstances,
// RunInstances or similar answer: the items of every instancesSet.
func (n *node) instances() []*node {
	var out []*node
	n.walk(func(e *node) {
		if e.name == "instancesSet" {
			for _, it := range e.children {
				if it.name == "item" && it.child("instanceId") != nil {
					out = append(out, it)
				}
			}
		}
	})
	return out
}
