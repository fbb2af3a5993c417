module github.com/gosupermin/gosupermin

go 1.26.8

require (
	github.com/klauspost/compress v1.20.3
	github.com/package-url/packageurl-go v0.1.7
	github.com/spdx/tools-golang v0.5.7
	github.com/ulikunitz/xz v0.5.17
	golang.org/x/sys v0.49.0
)

require github.com/anchore/go-struct-converter v0.1.0 // indirect
