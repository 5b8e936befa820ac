// dockerfile-check lints Dockerfiles with BuildKit's own build checks (the rules behind
// `docker build --check`, https://docs.docker.com/reference/build-checks/), without a Docker engine
// or a registry: hadolint is in neither Debian nor any registry this project can reach, and
// BuildKit's rules are the ones every `docker build` applies anyway.
//
//	dockerfile-check [--json] Dockerfile...
//
// Prints each violation with its source lines and exits 1 if there is any (or if a file does not
// parse), 0 otherwise. A `# check=skip=<Rule>` directive in a Dockerfile is honoured as by docker.
//
// Base images are not pulled: the checks that read a base image's config (InvalidBaseImagePlatform,
// UndefinedVar for variables the base image defines) see a stand-in image with the requested
// platform and only the default PATH, so a Dockerfile must define the variables it uses itself.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)


// offlineResolver answers every base image with a one-layer image of the requested platform.
type offlineResolver struct{}

func (offlineResolver) ResolveImageConfig(_ context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	platform := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	if opt.ImageOpt != nil && opt.ImageOpt.Platform != nil {
		platform = *opt.ImageOpt.Platform
	}
	img := dockerspec.DockerOCIImage{
		Image: ocispecs.Image{
			Platform: platform,
			RootFS:   ocispecs.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString(ref)}},
		},
		Config: dockerspec.DockerOCIImageConfig{
			ImageConfig: ocispecs.ImageConfig{
				Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			},
		},
	}
	dt, err := json.Marshal(img)
	if err != nil {
		return "", "", nil, err
	}
	return ref, "", dt, nil
}

func check(ctx context.Context, path string, asJSON bool) (bool, error) {
	dt, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	opt := dockerfile2llb.ConvertOpt{
		SourceMap:    llb.NewSourceMap(nil, path, "Dockerfile", dt),
		MetaResolver: offlineResolver{},
	}
	// An empty definition: the source map is only used to print source lines.
	opt.SourceMap.Definition = &llb.Definition{}
	results, err := dockerfile2llb.DockerfileLint(ctx, dt, opt)
	if err != nil {
		return false, err
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return len(results.Warnings) == 0 && results.Error == nil, enc.Encode(results)
	}
	if err := results.PrintTo(os.Stdout, nil); err != nil {
		return false, err
	}
	results.PrintErrorTo(os.Stdout, nil)
	ok := len(results.Warnings) == 0 && results.Error == nil
	if ok {
		fmt.Printf("%s: no violations of BuildKit's build checks\n", path)
	} else {
		fmt.Printf("\n%s: %d violation(s)%s\n", path, len(results.Warnings), map[bool]string{true: " and a build error", false: ""}[results.Error != nil])
	}
	return ok, nil
}

func main() {
	asJSON := flag.Bool("json", false, "print BuildKit's lint results as JSON")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [--json] Dockerfile...\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	allOK := true
	for _, path := range flag.Args() {
		ok, err := check(context.Background(), path, *asJSON)
		if err != nil {
			fmt.Fprintf(os.Stderr, "dockerfile-check: %s: %v\n", path, err)
			os.Exit(2)
		}
		allOK = allOK && ok
	}
	if !allOK {
		os.Exit(1)
	}
}
