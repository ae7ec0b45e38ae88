package secret

import (
	"crypto/rand"
	"fmt"
	"math/big"
)

// Alphanumeric is the alphabet of generated passwords: no character needs
// quoting in a URL, a dotenv file or a connection string, and SASLprep
// leaves it unchanged.
const Alphanumeric = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// Random returns n characters drawn uniformly (crypto/rand) from alphabet,
// after prefix.
func Random(prefix string, n int, alphabet string) (Value, error) {
	if len(alphabet) < 2 {
		return Value{}, fmt.Errorf("random secret: alphabet needs at least 2 characters")
	}
	max := big.NewInt(int64(len(alphabet)))
	b := make([]byte, 0, len(prefix)+n)
	b = append(b, prefix...)
	for range n {
		x, err := rand.Int(rand.Reader, max)
		if err != nil {
			return Value{}, fmt.Errorf("reading randomness: %w", err)
		}
		b = append(b, alphabet[x.Int64()])
	}
	v := New(b)
	clear(b)
	return v, nil
}
