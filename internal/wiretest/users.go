package wiretest

import "github.com/mailsec/mailsec/userdb"

// UserDB creates the user database at path with one user, hashing the
// password with the cheapest Argon2 parameters: a test or example wants a
// login, not the cost a real database must impose on guessing.
func UserDB(path, user, password string) (*userdb.DB, error) {
	db, err := userdb.Open(path, &userdb.Options{Argon2: userdb.Argon2Params{Time: 1, Memory: 64, Threads: 1}})
	if err != nil {
		return nil, err
	}
	return db, db.Add(user, password)
}
